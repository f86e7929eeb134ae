"""``python -m ganinv.bench {generator,gan-step,sfn-step,encoder-step,synthfaces,explorer} [--json OUT]``."""

from __future__ import annotations

import argparse
import importlib

BENCHMARKS = {
    "generator": ("ganinv.bench.generator", "images/s of the StyleGAN2 generator, forward and backward"),
    "gan-step": ("ganinv.bench.gan_step", "images/s of whole GAN training steps, fp32 vs bf16 autocast"),
    "sfn-step": (
        "ganinv.bench.sfn_step",
        "images/s of SFN training steps, contiguous vs channels-last layout",
    ),
    "encoder-step": (
        "ganinv.bench.encoder_step",
        "steps/s of CLCAE / pSp / e4e training, fp32 vs bf16 autocast vs torch.compile",
    ),
    "synthfaces": ("ganinv.bench.synthfaces", "images/s of the SynthFaces renderer on one core"),
    "explorer": ("ganinv.bench.explorer", "seconds per update of the LatentExplorer widget"),
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m ganinv.bench", description=__doc__)
    parser.add_argument("name", choices=sorted(BENCHMARKS))
    known, rest = parser.parse_known_args(argv)
    module = importlib.import_module(BENCHMARKS[known.name][0])  # only the chosen benchmark is imported
    sub = argparse.ArgumentParser(
        prog=f"python -m ganinv.bench {known.name}", description=BENCHMARKS[known.name][1]
    )
    module.add_arguments(sub)
    module.main(sub.parse_args(rest))


if __name__ == "__main__":
    main()
