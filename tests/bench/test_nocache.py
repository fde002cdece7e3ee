"""The no-cache baseline must find the same translations as cached decoding, or the speed-up means nothing."""

import torch

from bench.nocache import RecomputingTorchDecoder
from model.model import ModelConfig, Transformer
from model.reference import translate_ids


def test_recomputing_decoder_matches_cached_decoding():
    torch.manual_seed(0)
    model = Transformer(ModelConfig(vocab_size=64, d_model=32, n_heads=4, d_ff=64, dropout=0.0)).eval()
    with torch.no_grad():  # larger random weights make the output depend on the input
        for p in model.parameters():
            p.mul_(3)
    sources = [[int(t) for t in torch.randint(4, 64, (n,))] + [3] for n in (3, 5, 8, 13)]
    for beam in (1, 3):
        cached = translate_ids(model, sources, 2, 3, beam_size=beam, n_best=beam)
        recomputed = translate_ids(
            model, sources, 2, 3, beam_size=beam, n_best=beam, decoder_factory=RecomputingTorchDecoder
        )
        assert [[h.token_ids for h in r] for r in recomputed] == [[h.token_ids for h in r] for r in cached]
