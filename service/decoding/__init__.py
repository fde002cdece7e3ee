"""Models on onnxruntime: the model directory and its manifest, the engine, and the greedy/beam search."""
