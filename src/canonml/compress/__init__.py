"""``compress``: pruned, int8 and distilled variants of a trained model, each a package
measured beside the original on this machine (sizes, non-zero parameters, ONNX Runtime
latency, the test metric) — never a claimed saving (DESIGN §7: a post-training stage)."""
