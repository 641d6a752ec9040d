"""Owl: long, consistent video generation with an omni world model (after Owl-1, arXiv 2412.09600).

    from owl import OwlPipeline
    pipe = OwlPipeline.from_pretrained("checkpoints/owl-shapes")
    out = pipe("a red circle enters from the left", seconds=24, output="circle.mp4")
"""

__version__ = "0.1.0"

from owl.config import PRESETS, ModelPreset, RendererConfig, WorldModelConfig  # noqa: E402
from owl.errors import OwlError  # noqa: E402
from owl.pipeline import OwlPipeline, OwlPipelineOutput  # noqa: E402
from owl.rollout import ClipEvent, ClipRecord, Storyboard  # noqa: E402
from owl.world import World  # noqa: E402

__all__ = [
    "OwlPipeline", "OwlPipelineOutput", "World", "OwlError", "Storyboard", "ClipRecord", "ClipEvent",
    "PRESETS", "ModelPreset", "WorldModelConfig", "RendererConfig", "__version__",
]
