"""The recipe shared by PPG and ECG (docs/design.md), and the variants of every config.

`configs/ppg.py` and `configs/ecg.py` add what differs by modality. A variant
string after the file name picks variants, comma-separated:
`configs/ppg.py:runlocal,no_koleo`.
"""

import ml_collections

# The encoder's stages: (width multiplier, kernel, repeats, stride); docs/design.md's 16
# MBConv blocks (models/efficientnet.py's default too).
PAPER_STAGES = (
    (4, 3, 1, 1),
    (5, 3, 2, 2),
    (7, 5, 2, 2),
    (9, 3, 3, 2),
    (11, 5, 3, 2),
    (14, 5, 4, 2),
    (18, 5, 1, 1),
)


def recipe() -> ml_collections.ConfigDict:
    """Every number of the paper's recipe that PPG and ECG share."""
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.modality = ""  # set by ppg.py / ecg.py

    # What the encoder sees; set by modality.
    c.input = ml_collections.ConfigDict()
    c.input.sample_rate = 0.0  # Hz after resampling
    c.input.window_seconds = 0.0
    # Samples per segment: follows sample_rate x window_seconds (also under overrides),
    # rounded half up as `ModalitySpec.segment_length` rounds it (100 Hz x 0.29 s: 29).
    c.input.segment_length = (
        c.input.get_ref("sample_rate") * c.input.get_ref("window_seconds") + 0.5
    ).to_int()
    c.input.channels = 0
    c.input.band_hz = (0.0, 0.0)  # band-pass; (0, 0) = none
    c.input.normalization = "zscore"  # per channel, per segment

    # From recordings to segments (ahms_fm/data/preprocess.py), shared by ingestion
    # and inference.
    c.preprocess = ml_collections.ConfigDict()
    c.preprocess.filter_order = 4  # Butterworth band-pass, run forward and backward
    c.preprocess.hop_seconds = 0.0  # between window starts; 0 = window_seconds
    # Recordings shorter than a window: 0 rejects them (too_short); f in (0, 1) pads one
    # lacking at most that fraction of a window with zeros, recorded per segment (pad_s).
    c.preprocess.max_pad_fraction = 0.0
    c.preprocess.storage_dtype = "float16"  # signals on disk; z-scored, so 3 digits suffice

    # A window failing any of these is rejected, with the first failing reason.
    c.quality = ml_collections.ConfigDict()
    c.quality.flat_seconds = 1.0  # a run of identical raw samples this long is "flat"
    c.quality.max_flat_fraction = 0.1  # of the window
    c.quality.max_clipped_fraction = 0.05  # samples at the window's min or max
    c.quality.heart_rate_bpm = (30.0, 220.0)  # plausible range of the estimated rate
    c.quality.max_motion_g = 0.2  # std of accelerometer magnitude, where recorded

    c.model = ml_collections.ConfigDict()
    c.model.name = "efficientnet1d"
    c.model.embed_dim = 256
    c.model.expansion = 7
    c.model.stages = PAPER_STAGES
    c.model.se_ratio = 0.25
    c.model.stem_kernel = 3
    c.model.bn_epsilon = 1e-3
    c.model.bn_momentum = 0.9  # weight of the old running average: 0.1 for the batch
    c.model.depthwise_impl = "auto"  # shift on CPU, XLA's grouped conv elsewhere
    c.model.dtype = "float32"  # compute dtype; "bfloat16" keeps float32 parameters

    c.head = ml_collections.ConfigDict()
    c.head.hidden_dim = 1024
    c.head.out_dim = 128
    c.head.dropout = 0.1
    c.head.predictor_hidden_dim = 1024  # BYOL-style ablation only

    c.loss = ml_collections.ConfigDict()
    c.loss.name = "infonce_koleo"  # or "byol"
    c.loss.temperature = 0.04
    c.loss.koleo_weight = 0.1
    c.loss.positives = "participant"  # or "segment"

    c.teacher = ml_collections.ConfigDict()
    c.teacher.kind = "ema"  # "ema", or "none": the student encodes both views (SimCLR)
    c.teacher.momentum = 0.99  # constant, updated before each gradient step

    # Probabilities and parameters per augmentation; probabilities set by modality.
    c.augment = ml_collections.ConfigDict()
    c.augment.cut_out = dict(p=0.0, min_fraction=0.3, max_fraction=0.5)
    c.augment.magnitude_warp = dict(p=0.0, sigma=0.2, knots=5)
    c.augment.time_warp = dict(p=0.0, sigma=0.1, knots=5)
    c.augment.gaussian_noise = dict(p=0.0, min_sigma=0.05, max_sigma=0.1)
    c.augment.channel_permute = dict(p=0.0)

    c.optimizer = ml_collections.ConfigDict()
    c.optimizer.name = "adam"
    c.optimizer.learning_rate = 1e-3
    c.optimizer.weight_decay = 1e-5  # L2, added to the gradient (not decoupled)
    c.optimizer.adam_eps = 1e-8
    c.optimizer.grad_clip_norm = 0.0  # 0 = no clipping

    c.schedule = ml_collections.ConfigDict()
    c.schedule.name = "step_halving"  # or "warmup_cosine"
    c.schedule.halve_every_steps = 125_000  # 125 validation intervals of 1,000 steps
    c.schedule.warmup_steps = 0
    c.schedule.final_fraction = 0.0  # warmup_cosine only

    c.batch_size = 256  # global, over all devices and hosts
    c.num_steps = 500_000

    c.data = ml_collections.ConfigDict()
    c.data.dataset = ""  # set by modality; synthetic_* are built on first use
    c.data.data_dir = "datasets"  # where `ahms-fm ingest` writes datasets
    c.data.source_dir = ""  # the raw recordings a real / bring-your-own dataset is built from
    c.data.byo_spec = ""  # JSON file describing a bring-your-own folder (data/readers/byo.py)
    c.data.on_error = "raise"  # an unreadable file stops ingestion, or "skip" (reported)
    c.data.participants = 2_000  # synthetic cohort size
    c.data.segments_per_participant = 16  # synthetic cohort
    c.data.synthetic_seed = 0  # the cohort, independent of the training seed
    c.data.sample_by = "segment"  # epoch over segments, or "participant"
    c.data.num_workers = 0  # Grain worker processes; 0 = threads in this process
    c.data.prefetch = 2  # batches buffered per worker

    # Linear probes on frozen embeddings (ahms_fm/evaluation, `ahms-fm probe`).
    c.probe = ml_collections.ConfigDict()
    c.probe.which = "teacher"  # encoder to evaluate: the EMA "teacher" or the "student"
    c.probe.folds = 5  # k-fold CV over participants picks each probe's strength
    c.probe.log10_strengths = (-1.0, 6.0)  # ridge alpha / logistic 1/C, log-spaced ...
    c.probe.num_strengths = 8  # ... over this many values
    c.probe.protocol = "auto"  # "split" (test split held out), "crossfit" (outer k folds)
    c.probe.min_test_participants = 100  # auto: fewer in the test split -> crossfit
    c.probe.n_boot = 1_000  # bootstrap replicates over test participants
    c.probe.level = 0.95  # confidence level of the intervals
    c.probe.seed = 0  # folds, bootstrap and the random-init baseline
    # Same probes on: random_init (random_seeds encoders), init (the run's step 0),
    # handcrafted features, demographic (age, sex, BMI; for conditions only), ceiling (a
    # synthetic cohort's true physiology; participant targets; none for real data).
    c.probe.baselines = "random_init,init,handcrafted,demographic,ceiling"
    c.probe.random_seeds = 5  # randomly initialized encoders (seeds other than the run's)
    c.probe.batch_size = 256  # segments per embedding forward pass
    # Participant identification across time (evaluation/retrieval.py): each participant's
    # first third of segments queries the last third of everybody's, for every feature set.
    c.probe.retrieval = True
    # The untrained encoders' (random_init, init) batch-norm statistics, re-estimated on
    # training windows.
    c.probe.calibration_windows = 128
    c.probe.calibration_passes = 40
    c.probe.every_steps = 0  # >0: a quick ridge probe on the validation split while training
    c.probe.train_targets = ""  # its targets ("" = the dataset's defaults)
    c.probe.max_segments_per_participant = 4  # its embedding budget

    c.log_every_steps = 100
    c.eval_every_steps = 1_000
    c.eval_batches = 8  # validation batches per evaluation
    c.best_metric = "retrieval_top1"  # validation metric that picks the best checkpoint
    c.checkpoint_every_steps = 1_000
    c.keep_checkpoints = 3  # the last N; step 0 (the initialization) is always kept too
    c.keep_every_steps = 0  # >0: also save and keep a checkpoint at each multiple (learning curves)
    return c


def _runlocal(c):
    """Seconds on a laptop CPU: a small batch, a narrow encoder, a few steps."""
    c.batch_size = 16
    c.num_steps = 30
    c.model.embed_dim = 72
    c.head.hidden_dim = 128
    c.head.out_dim = 32
    c.head.predictor_hidden_dim = 128
    c.data.participants = 256  # the probes need participants more than training does
    c.data.segments_per_participant = 4
    c.log_every_steps = 5
    c.eval_every_steps = 15
    c.checkpoint_every_steps = 15
    c.probe.every_steps = 15


def _study(c):
    """A 2-core CPU study scale, chosen by measurement (docs/results.md): the recipe's
    encoder at runlocal width on shorter windows, a larger batch, a warmer temperature,
    1,000 synthetic participants; ~0.6 s a step on 2 cores."""
    _runlocal(c)
    # Shorter windows only where the modality's own length is set (not e.g. ppg_bp's 2 s).
    if c.input.window_seconds == {"ppg": 60.0, "ecg": 30.0}.get(c.modality):
        c.input.window_seconds = 20.0 if c.modality == "ppg" else 10.0
    c.batch_size = 64
    # The paper's 0.04 is for batch 256; at batch 64 it learned ~2x slower than 0.1
    # (age R2 at 300 steps 0.37 vs 0.50, docs/results.md).
    c.loss.temperature = 0.1
    c.data.participants = 1000
    c.data.segments_per_participant = 8
    c.num_steps = 1500
    c.log_every_steps = 25
    c.eval_every_steps = 150
    c.checkpoint_every_steps = 150
    c.keep_every_steps = 150  # every checkpoint kept: learning curves
    c.probe.every_steps = 300
    # The test split is ~100 of 1,000 (binomial: 99 with seed 0), auto's threshold:
    # say which protocol, so the study's numbers never switch with the draw.
    c.probe.protocol = "split"


def _demo(c):
    """`make demo`: the study scale, shorter (minutes on 2 cores)."""
    _study(c)
    c.num_steps = 400
    c.eval_every_steps = 100
    c.checkpoint_every_steps = 100
    c.keep_every_steps = 100
    c.probe.every_steps = 0


def _tiny(c):
    """For tests of the training machinery: runlocal with a 3-block encoder on 8 s windows
    (compiles in seconds; not the paper's model)."""
    _runlocal(c)
    c.model.stages = ((4, 3, 1, 1), (7, 5, 1, 2), (14, 5, 1, 2))
    c.input.window_seconds = 8.0 if c.modality == "ppg" else 4.0
    c.model.embed_dim = 36
    c.head.hidden_dim = 64
    c.head.out_dim = 16
    c.data.participants = 48
    c.probe.every_steps = 0
    c.batch_size = 16
    c.num_steps = 8
    c.log_every_steps = 1
    c.eval_every_steps = 4
    c.eval_batches = 2
    c.checkpoint_every_steps = 2


def _segment_level(c):
    c.loss.positives = "segment"


def _no_koleo(c):
    c.loss.koleo_weight = 0.0


def _simclr(c):
    c.teacher.kind = "none"
    c.probe.which = "student"  # no teacher to probe


def _byol(c):
    c.loss.name = "byol"


VARIANTS = {
    "runlocal": _runlocal,
    "tiny": _tiny,
    "study": _study,
    "demo": _demo,
    "segment_level": _segment_level,
    "no_koleo": _no_koleo,
    "simclr": _simclr,
    "byol": _byol,
}


def finish(c: ml_collections.ConfigDict, arg: str | None, extra=None) -> ml_collections.ConfigDict:
    """Apply the variants named in `arg` (common ones and `extra`), check, lock the keys."""
    from ahms_fm.config_utils import lock, parse_variants

    variants = {**VARIANTS, **(extra or {})}
    for name in parse_variants(arg, variants):
        variants[name](c)
    if c.input.segment_length <= 0:
        raise ValueError(f"input.segment_length must be positive, got {c.input.segment_length}")
    return lock(c)
