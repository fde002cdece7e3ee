"""The CTranslate2 copy of a model must decode like the PyTorch reference, or the benchmark lies."""

import pytest
import torch

ctranslate2 = pytest.importorskip("ctranslate2", reason="ctranslate2 (the bench extra) is not installed")

from bench.ct2_convert import convert_to_ctranslate2  # noqa: E402
from model.model import ModelConfig, Transformer  # noqa: E402

BOS, EOS, MAX_LENGTH = 2, 3, 12
# CTranslate2 computes with MKL on Intel and oneDNN on AMD: where two tokens are within float noise of each other its
# greedy choice may differ from PyTorch's, so each choice is checked against PyTorch's best up to this tolerance.
TOLERANCE = 1e-3


def teacher_forced_log_probs(model: Transformer, source: list[int], target: list[int]) -> torch.Tensor:
    """PyTorch's log-probabilities at each step of `target` (after bos), given that prefix: (len(target) + 1, V)."""
    with torch.no_grad():
        logits = model(torch.tensor([source]), torch.tensor([[BOS, *target]]))
    return torch.log_softmax(logits[0], dim=-1)


def test_ctranslate2_greedy_takes_pytorch_best_token_at_every_step(tmp_path):
    torch.manual_seed(0)
    vocabulary = ["<pad>", "<unk>", "<s>", "</s>"] + [f"w{i}" for i in range(60)]
    model = Transformer(ModelConfig(vocab_size=len(vocabulary), d_model=32, n_heads=4, d_ff=64, dropout=0.0)).eval()
    with torch.no_grad():  # larger random weights make the output depend on the input
        for p in model.parameters():
            p.mul_(3)
    sources = [[int(t) for t in torch.randint(4, len(vocabulary), (n,))] + [EOS] for n in (3, 5, 8, 13)]

    translator = ctranslate2.Translator(
        str(convert_to_ctranslate2(model, vocabulary, tmp_path / "ct2")), intra_threads=1
    )
    results = translator.translate_batch(
        [[vocabulary[t] for t in s] for s in sources], beam_size=1, max_decoding_length=MAX_LENGTH
    )
    outputs = [[vocabulary.index(t) for t in r.hypotheses[0]] for r in results]
    for source, target in zip(sources, outputs, strict=True):
        log_probs = teacher_forced_log_probs(model, source, target)
        chosen = target + [EOS] if len(target) < MAX_LENGTH else target  # a shorter output ended with eos
        for step, token in enumerate(chosen):
            best = log_probs[step].max().item()
            assert log_probs[step, token].item() >= best - TOLERANCE, f"step {step} of {target}"
    assert len({tuple(o) for o in outputs}) > 1, "outputs do not depend on the input: the check is too weak"
