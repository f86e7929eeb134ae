"""Evaluation, in one place: every benchmark and held-out evaluation of the project (``ganinv eval ...``).

* ``reconstruction``: the reconstruction benchmark, every inversion method on held-out SynthFaces, factor
  error against ground truth, realism columns (``ganinv eval reconstruction``);
* ``editing``: the editing benchmark, edits scored by SFN read-out against ground truth, and the directions
  it fits (``ganinv eval editing``, ``ganinv train directions``);
* ``inpainting``: inpainting per hole-ratio bucket and its baselines (``ganinv eval inpainting``);
* ``budget``: the training-budget study, CLCAE's ablation claims decided per budget (``ganinv eval budget``);
* ``metric_battery``: the distortion battery that measures what each metric responds to (``ganinv eval
  metrics``);
* ``claims``: the ablation claims of both papers decided from the results files;
* ``gan``: FID-SFN and attribute statistics of a generator (``ganinv eval gan``);
* ``encoder``: held-out reconstruction quality of a stage-2 encoder (``ganinv eval encoder``);
* ``retrieval``: held-out image <-> w retrieval of the stage-1 aligner (``ganinv eval contrastive``);
* ``sfn``: held-out attribute accuracy and identity retrieval of SFN (``ganinv eval sfn``);
* ``time_to_quality``: optimisation in W / W+ against steps and seconds, and the steps that match each
  encoder (``ganinv eval time-to-quality``).

Evaluators import models, data, metrics and the shared helpers, never the trainers; the trainers import their
end-of-run evaluation from here.
"""
