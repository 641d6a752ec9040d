"""Stage-wise training (Owl-1 §3.3): `vae`, `align`, `generate`, `world`; one linear script per stage."""
