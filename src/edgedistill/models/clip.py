"""`hf-clip:DIR`: a local CLIP model as a zero-shot teacher; its classes come from prompts, not a trained head.

Logits are CLIP's own: cosine similarity of the image embedding with each class's text embedding, times
the model's learned temperature exp(logit_scale). A class's text embedding is the normalized mean of its
prompt templates' normalized embeddings (the CLIP paper's prompt ensembling; one template = CLIP exactly).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UserError
from ..usertext import read_json_file
from .base import MODEL_SOURCES
from .hf import import_transformers

OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)  # CLIPImageProcessor's defaults
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def _unit(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True)


class CLIPZeroShot(nn.Module):
    """Image tower + class text embeddings; the text tower is used once, in `set_classes`, then dropped."""

    zero_shot = True  # the pipeline never trains it: its knowledge is in the saved weights and the prompts

    def __init__(self, clip: nn.Module, tokenizer: Any, mean: tuple, std: tuple, image_size: int):
        super().__init__()
        self.vision, self.proj, self.logit_scale = clip.vision_model, clip.visual_projection, clip.logit_scale
        self._text = (clip.text_model, clip.text_projection, tokenizer)  # a tuple: not a submodule, not saved
        self.image_size = image_size
        self.register_buffer("clip_mean", torch.tensor(mean).view(1, 3, 1, 1))
        self.register_buffer("clip_std", torch.tensor(std).view(1, 3, 1, 1))
        self.register_buffer("data_mean", torch.tensor(mean).view(1, 3, 1, 1))
        self.register_buffer("data_std", torch.tensor(std).view(1, 3, 1, 1))
        self.register_buffer("class_embeds", torch.empty(0))

    @torch.no_grad()
    def text_embeddings(self, texts: list[str]) -> torch.Tensor:
        """Normalized text embeddings, computed as CLIPModel does (text tower's pooled output, projected)."""
        model, proj, tok = self._text
        enc = tok(texts, padding=True, return_tensors="pt")
        out = model(input_ids=enc["input_ids"], attention_mask=enc.get("attention_mask"))
        return _unit(proj(out.pooler_output))

    def set_classes(self, class_names: list[str], prompts: list[str], mean: Any = None, std: Any = None) -> None:
        """Class embeddings from the prompt templates; `mean`/`std`: the data's normalization, undone in forward."""
        embeds = [_unit(self.text_embeddings([p.format(c) for p in prompts]).mean(0)) for c in class_names]
        self.class_embeds = torch.stack(embeds)
        if mean is not None:
            self.data_mean = torch.tensor(list(mean), dtype=torch.float).view(1, 3, 1, 1)
            self.data_std = torch.tensor(list(std), dtype=torch.float).view(1, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.class_embeds.numel():
            raise RuntimeError("CLIPZeroShot.set_classes(class_names, prompts) must run before forward")
        x = x * self.data_std + self.data_mean  # back to [0, 1] pixels, then CLIP's own size and normalization
        if x.shape[-1] != self.image_size or x.shape[-2] != self.image_size:
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bicubic", align_corners=False)
        x = (x - self.clip_mean) / self.clip_std
        image = _unit(self.proj(self.vision(pixel_values=x).pooler_output))
        return self.logit_scale.exp() * image @ self.class_embeds.t().to(image)


def _check_dir(path: Path) -> dict[str, Any]:
    cfg_file = path / "config.json"
    if not cfg_file.is_file():
        raise UserError(f"{path} is not a transformers model folder (no config.json)")
    cfg = read_json_file(cfg_file, "hf-clip: config")
    if not isinstance(cfg, dict):
        raise UserError(f"{cfg_file}: a transformers config is a JSON object, got {type(cfg).__name__}")
    if cfg.get("model_type") != "clip" or "text_config" not in cfg:
        raise UserError(f"{path} holds a {cfg.get('model_type') or 'model'} without a text tower (config.json "
                        "model_type must be 'clip' with a text_config); a zero-shot teacher needs image and text "
                        "towers; allowed: a CLIPModel folder (save_pretrained) with its tokenizer")
    return cfg


class CLIPSource:
    """Loads a CLIPModel and its tokenizer with local files only: nothing is downloaded at run time."""

    def create(self, name: str, num_classes: int | None, pretrained: bool) -> nn.Module:
        path = Path(name).expanduser()
        _check_dir(path)
        tf = import_transformers()
        try:
            clip = tf.CLIPModel.from_pretrained(str(path), local_files_only=True)
            tok = tf.AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        except (OSError, ValueError, TypeError) as e:
            raise UserError(f"cannot load the CLIP model and tokenizer in {path}: {e}") from None
        mean, std = OPENAI_CLIP_MEAN, OPENAI_CLIP_STD
        pre = path / "preprocessor_config.json"
        if pre.is_file():
            p = read_json_file(pre, "hf-clip: preprocessor config")
            p = p if isinstance(p, dict) else {}
            mean, std = tuple(p.get("image_mean", mean)), tuple(p.get("image_std", std))
        clip.eval()
        return CLIPZeroShot(clip, tok, mean, std, int(clip.config.vision_config.image_size))

    def names(self) -> list[str]:
        return []

    def native_classes(self, name: str, pretrained: bool) -> int | None:
        _check_dir(Path(name).expanduser())
        return None  # classes come from the data's class names and teacher.prompts


MODEL_SOURCES.register("hf-clip", description="hf-clip:DIR — a local CLIPModel folder (+ tokenizer) as a "
                       "zero-shot teacher: logits = image-text cosine × learned logit_scale, classes from "
                       "teacher.prompts (needs edgedistill[hf])")(CLIPSource())
