"""Checks the unit and end-to-end package tests share."""

from __future__ import annotations

from typing import Any

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2


def parse_triton_config(text: str) -> Any:
    """``config.pbtxt`` text as Triton's ``ModelConfig`` message (raises on a bad config)."""
    return text_format.Parse(text, model_config_pb2.ModelConfig())


def check_against_signature(config: Any, sig: dict[str, Any], max_batch_size: int) -> None:
    """What Triton needs: batch axis left out of dims, batch-only tensors as [1] → []."""
    types = model_config_pb2.DataType
    assert config.platform == "onnxruntime_onnx" and config.max_batch_size == max_batch_size
    assert config.HasField("dynamic_batching")
    for declared, tensors in ((sig["inputs"], config.input), (sig["outputs"], config.output)):
        assert [t.name for t in tensors] == [d["name"] for d in declared]
        for d, t in zip(declared, tensors, strict=True):
            assert types.Name(t.data_type) == f"TYPE_{d['datatype']}"
            assert d["shape"][0] == -1  # the batch axis Triton adds
            if len(d["shape"]) == 1:
                assert list(t.dims) == [1] and t.HasField("reshape")
                assert list(t.reshape.shape) == []
            else:
                assert list(t.dims) == d["shape"][1:] and not t.HasField("reshape")
    by_name = {t.name: t for t in config.output}
    if sig["labels"]:
        assert by_name["probabilities"].label_filename == "labels.txt"
        assert list(by_name["probabilities"].dims) == [len(sig["labels"])]
    assert not [t for t in config.output if t.label_filename and t.name != "probabilities"]


# Every pipeline type the Hub knows (huggingface.js packages/tasks/src/pipelines.ts).
HUB_PIPELINE_TAGS = frozenset(
    "text-classification token-classification table-question-answering question-answering "
    "zero-shot-classification translation summarization feature-extraction text-generation "
    "text2text-generation fill-mask sentence-similarity text-to-speech text-to-audio "
    "automatic-speech-recognition audio-to-audio audio-classification voice-activity-detection "
    "depth-estimation image-classification object-detection image-segmentation text-to-image "
    "image-to-text image-to-image image-to-video unconditional-image-generation "
    "video-classification reinforcement-learning robotics tabular-classification "
    "tabular-regression tabular-to-text table-to-text multiple-choice text-retrieval "
    "time-series-forecasting text-to-video image-text-to-text visual-question-answering "
    "document-question-answering zero-shot-image-classification graph-ml mask-generation "
    "zero-shot-object-detection text-to-3d image-to-3d image-feature-extraction "
    "video-text-to-text keypoint-detection other".split()
)


def check_card_against_metrics(card: Any, metrics: dict[str, float]) -> None:
    """The card's model-index results are ``metrics``, one each, value for value."""
    from canonml.package.hf import HUB_METRICS

    assert card.data.pipeline_tag in HUB_PIPELINE_TAGS
    got = {(r.metric_type, r.metric_name): r.metric_value for r in card.data.eval_results}
    want = {HUB_METRICS[k][:2]: v for k, v in metrics.items()}
    assert got == want
    assert {r.task_type for r in card.data.eval_results} == {card.data.pipeline_tag}
