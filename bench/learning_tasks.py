"""The learning suite's tasks: generated data sets of graded difficulty that a good recipe must learn.

Each task is a set of patients with several images each, labelled per patient (a patient has the finding
or not), split by patient (train/val/test), and carries nuisances that differ per patient but say
nothing about the label: exposure, position, scanner response, a burnt-in marker. Backgrounds are real
anatomy or the project's own synthetic radiographs, so the finding must be told apart from structure:

- `chest_opacity`: 2-4 faint diffuse opacities (Gaussian patches 6-11 px across at 96 px) spread over
  the lungs of the project's synthetic radiographs (`tasks.demo_data.synth`): the spread of intensities
  inside the lung fields separates the classes well; per-patient exposure, position and noise.
- `chest_nodule`: one small faint nodule (4-6 px across at 96 px) in a lung of the same radiographs;
  per-patient exposure, position and noise.
- `brain_lesion`: a small lesion (12-16 mm across, 6-8 px at 96 px), darker or brighter than its
  surroundings, in the white matter of real brain MR anatomy (the MNI152 T1 template that nilearn ships
  inside its wheel); per-patient slice level, rotation, scale and scanner bias field.
- `brain_focal`: as `brain_lesion`, but the lesion is 3-5 px across at 256 px (1-2 px at 96), a
  bright one above the white matter (so above the percentile window's top), a dark one near grey
  matter's level: the kind of finding a radiologist circles.
- `chest_focal`: a calcification (brighter than the heart) or a small lucency, 3-5 px across at 256 px,
  in a lung of the synthetic radiographs; per-patient exposure, position and noise.
- `chest_rare_marker`: a rare (15 %) faint opacity (7-10 px across at 96 px) in a lung; three scanners
  with their own contrast curve and noise, and a bright side marker in half of the patients, unrelated
  to the label.

Sizes are full widths at half maximum. The finding strengths (below) are set so the simple baseline
sees each finding but not all of it (test AUC ~0.7-0.9 at 240 patients), so beating it means something.

Raw images are made at `RAW_SIZE` px and go through preprocess's own transform
(`tasks.preprocess.transform.image_to_tensor`: intensity window, resize) with the settings given, so a
store built here is what the pipeline would train on; one draw (`draw_task`) can be preprocessed in
several ways for paired comparisons. Tests use the same generators at tiny sizes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage

from tasks.common.atomic import atomic_open, atomic_path, write_json
from tasks.demo_data.synth import MAX_STORED, chest_image
from tasks.preprocess.transform import TransformSettings, build_transform, image_to_tensor

RAW_SIZE = 256  # side of the generated images before preprocess's resize (px)
CLASSES = ["finding", "normal"]  # sorted, as preprocess orders classes; "normal" is the negative class
SPLIT_FRACTIONS = {"test": 0.25, "val": 0.15}  # share of patients per split (the rest: train)

# Finding strengths, ranges drawn per patient: sigma is the Gaussian's width as a fraction of the image
# side (0.02 = ~2 px at 96 px), gain its height in [0, 1] image units, contrast a share of the local
# intensity.
OPACITY_SIGMA, OPACITY_GAIN = (0.025, 0.05), (0.05, 0.1)  # chest_opacity: 2-4 diffuse patches
NODULE_SIGMA, NODULE_GAIN = (0.018, 0.025), (0.11, 0.18)  # chest_nodule: one small nodule
LESION_SIGMA, LESION_CONTRAST = (0.025, 0.035), (0.5, 0.7)  # brain_lesion: share of the local intensity
FWHM = 2 * np.sqrt(2 * np.log(2))  # a Gaussian's full width at half maximum, in sigmas
# Focal findings: 3-5 px across (full width at half maximum) at RAW_SIZE, ~1-2 px at 96 px.
FOCAL_SIGMA = (3 / FWHM / RAW_SIZE, 5 / FWHM / RAW_SIZE)
FOCAL_CONTRAST = (0.5, 0.8)  # brain_focal: share of the local intensity, brighter or darker
FOCAL_BRIGHT_GAIN, FOCAL_DARK_GAIN = (0.35, 0.6), (0.15, 0.25)  # chest_focal: image units
RARE_SIGMA, RARE_GAIN = (0.03, 0.045), (0.18, 0.25)  # chest_rare_marker: one faint opacity
RARE_PREVALENCE = 0.15  # chest_rare_marker: share of patients with the finding


@dataclass(frozen=True)
class TaskData:
    """One generated data set: (N, 1, S, S) float16 images in [0, 1] and per-image labels/patients/splits."""

    images: np.ndarray
    labels: np.ndarray  # (N,) int64 index into CLASSES
    patients: np.ndarray  # (N,) str
    splits: np.ndarray  # (N,) str: train | val | test, by patient


Painter = Callable[[int, bool, int, np.random.Generator], list[np.ndarray]]


@dataclass(frozen=True)
class LearningTask:
    """A suite entry: how to draw one patient's raw images, its prevalence and the recipe's target."""

    name: str
    summary: str
    prevalence: float  # share of patients with the finding
    target_auc: float  # test ROC-AUC the default recipe must reach (and beat the baseline)
    paint: Painter  # (patient index, has finding, images, rng) -> raw (RAW, RAW) float images


def _gaussian_spot(cy: float, cx: float, sigma: float) -> np.ndarray:
    """(RAW, RAW) Gaussian bump of height 1 centred at normalised (cy, cx), width sigma (normalised)."""
    yy, xx = np.mgrid[0:RAW_SIZE, 0:RAW_SIZE].astype(np.float32) / RAW_SIZE
    return np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sigma**2))


def _chest_background(rng: np.random.Generator) -> np.ndarray:
    """A normal synthetic radiograph in [0, 1] (its own exposure, noise and anatomy), (RAW, RAW)."""
    return chest_image(RAW_SIZE, "normal", rng).astype(np.float32) / MAX_STORED


def _lung_point(rng: np.random.Generator, side: int) -> tuple[float, float]:
    """A normalised point well inside lung `side` (0 right, 1 left) of synth's anatomy."""
    return 0.45 + rng.uniform(-0.13, 0.13), 0.5 + (2 * side - 1) * 0.19 + rng.uniform(-0.05, 0.05)


def _move(image: np.ndarray, dy: float, dx: float, angle: float = 0.0, scale: float = 1.0) -> np.ndarray:
    """Rotate (degrees) and scale about the centre, then shift by (dy, dx) px; edges filled by nearest."""
    centre = (np.array(image.shape) - 1) / 2
    rad = np.deg2rad(angle)
    matrix = np.array([[np.cos(rad), -np.sin(rad)], [np.sin(rad), np.cos(rad)]]) / scale
    offset = centre - matrix @ (centre + np.array([dy, dx]))
    return ndimage.affine_transform(image, matrix, offset, order=1, mode="nearest")


def paint_chest_opacity(
    patient: int, finding: bool, count: int, rng: np.random.Generator
) -> list[np.ndarray]:
    """One patient: 2-4 faint patchy opacities spread over the lungs; per-patient exposure and noise."""
    anatomy = _chest_background(rng)
    opacity = np.zeros_like(anatomy)
    if finding:
        for _ in range(int(rng.integers(2, 5))):
            cy, cx = _lung_point(rng, int(rng.integers(0, 2)))
            opacity += _gaussian_spot(cy, cx, rng.uniform(*OPACITY_SIGMA)) * rng.uniform(*OPACITY_GAIN)
    return _radiographs(anatomy + opacity, count, rng)


def paint_chest_nodule(patient: int, finding: bool, count: int, rng: np.random.Generator) -> list[np.ndarray]:
    """One patient: same anatomy and nodule in every image, moved a little; per-patient exposure."""
    anatomy = _chest_background(rng)
    cy, cx = _lung_point(rng, int(rng.integers(0, 2)))
    nodule = _gaussian_spot(cy, cx, rng.uniform(*NODULE_SIGMA)) * rng.uniform(*NODULE_GAIN) * finding
    return _radiographs(anatomy + nodule, count, rng)


def paint_chest_focal(patient: int, finding: bool, count: int, rng: np.random.Generator) -> list[np.ndarray]:
    """One patient: one focal finding 3-5 px across in a lung, the same in every image: a calcified
    granuloma brighter than the heart (half of the patients) or a small lucency."""
    anatomy = _chest_background(rng)
    cy, cx = _lung_point(rng, int(rng.integers(0, 2)))
    bright = rng.random() < 0.5
    gain = rng.uniform(*FOCAL_BRIGHT_GAIN) if bright else -rng.uniform(*FOCAL_DARK_GAIN)
    spot = _gaussian_spot(cy, cx, rng.uniform(*FOCAL_SIGMA)) * gain * finding
    return _radiographs(anatomy + spot, count, rng)


def _radiographs(chest: np.ndarray, count: int, rng: np.random.Generator) -> list[np.ndarray]:
    """`count` exposures of one patient's chest: moved a little each time; the patient's own exposure,
    offset and noise level (a nuisance the label does not follow)."""
    exposure, offset, noise = rng.uniform(0.75, 1.2), rng.uniform(-0.08, 0.08), rng.uniform(0.01, 0.03)
    images = []
    for _ in range(count):
        moved = _move(chest, rng.normal(0, 4), rng.normal(0, 4), angle=rng.normal(0, 2))
        images.append(moved * exposure + offset + rng.normal(0, noise, moved.shape))
    return images


@cache
def _mni_slices() -> tuple[np.ndarray, np.ndarray]:
    """Axial slices of the MNI152 T1 template and its white-matter mask, (Z, Y, X) float32, 1 mm.

    nilearn ships both files inside its wheel (nilearn/datasets/data): nothing is downloaded.
    """
    from nilearn.datasets import load_mni152_template, load_mni152_wm_mask

    t1 = load_mni152_template(resolution=1).get_fdata(dtype=np.float32)  # (X, Y, Z) RAS
    wm = load_mni152_wm_mask(resolution=1).get_fdata(dtype=np.float32)
    # (X, Y, Z) -> (Z, Y, X), anterior up: an axial image as a radiologist looks at it.
    return np.flip(t1.transpose(2, 1, 0), axis=1) / t1.max(), np.flip(wm.transpose(2, 1, 0), axis=1)


def _square(image: np.ndarray) -> np.ndarray:
    """Pad a (H, W) slice to a centred square and resize it to (RAW, RAW)."""
    side = max(image.shape)
    pad = [((side - n) // 2, side - n - (side - n) // 2) for n in image.shape]
    square = np.pad(image, pad)
    return ndimage.zoom(square, RAW_SIZE / side, order=1)


def paint_brain_lesion(patient: int, finding: bool, count: int, rng: np.random.Generator) -> list[np.ndarray]:
    """One patient's axial slices near one level; a lesion in the white matter, darker or brighter."""
    return _brain_slices(finding, count, rng, LESION_SIGMA, LESION_CONTRAST)


def paint_brain_focal(patient: int, finding: bool, count: int, rng: np.random.Generator) -> list[np.ndarray]:
    """As brain_lesion, but the lesion is 3-5 px across at RAW_SIZE: a bright one exceeds the white
    matter (the window's top), a dark one falls to grey matter's level."""
    return _brain_slices(finding, count, rng, FOCAL_SIGMA, FOCAL_CONTRAST)


def _brain_slices(
    finding: bool,
    count: int,
    rng: np.random.Generator,
    sigma: tuple[float, float],
    strength: tuple[float, float],
) -> list[np.ndarray]:
    """One patient's slices: level, rotation, scale, bias field, gain and noise of its own; with a
    finding, a Gaussian lesion of width `sigma` and contrast `strength` (share of the local intensity,
    sign drawn per patient) at a random white-matter point of each slice."""
    t1, wm = _mni_slices()
    level = int(rng.integers(75, 105))  # around the lateral ventricles (MNI z index, 1 mm)
    bias_axis = rng.normal(0, 1, 2)
    angle, scale = rng.normal(0, 6), rng.uniform(0.9, 1.1)
    yy, xx = np.mgrid[0:RAW_SIZE, 0:RAW_SIZE].astype(np.float32) / RAW_SIZE - 0.5
    bias = 1 + 0.25 * (bias_axis[0] * yy + bias_axis[1] * xx)  # scanner coil inhomogeneity
    gain, noise = rng.uniform(0.7, 1.3), rng.uniform(0.01, 0.03)
    contrast = rng.choice([-1.0, 1.0]) * rng.uniform(*strength)  # share of the local intensity
    images = []
    for _ in range(count):
        z = level + int(rng.integers(-3, 4))  # a neighbouring slice each time
        image, mask = _square(t1[z]), _square(wm[z]) > 0.7
        if finding:
            inside = np.argwhere(ndimage.binary_erosion(mask, iterations=4))
            centre = inside[rng.integers(len(inside))] if len(inside) else np.full(2, RAW_SIZE // 2)
            cy, cx = centre / RAW_SIZE
            lesion = _gaussian_spot(cy, cx, rng.uniform(*sigma))
            image = image * (1 + contrast * lesion)
        moved = _move(image, rng.normal(0, 3), rng.normal(0, 3), angle=angle, scale=scale)
        images.append(moved * bias * gain + rng.normal(0, noise, moved.shape))
    return images


SCANNERS = ((1.0, 0.01), (0.7, 0.025), (1.4, 0.015))  # (gamma of the contrast curve, noise std)


def paint_chest_rare_marker(
    patient: int, finding: bool, count: int, rng: np.random.Generator
) -> list[np.ndarray]:
    """One patient: a rare faint opacity; scanner curve and a side marker unrelated to it."""
    anatomy = _chest_background(rng)
    gamma, noise = SCANNERS[int(rng.integers(len(SCANNERS)))]
    marker = rng.random() < 0.5
    cy, cx = _lung_point(rng, int(rng.integers(0, 2)))
    opacity = _gaussian_spot(cy, cx, rng.uniform(*RARE_SIGMA)) * rng.uniform(*RARE_GAIN) * finding
    images = []
    for _ in range(count):
        image = _move(anatomy + opacity, rng.normal(0, 4), rng.normal(0, 4), angle=rng.normal(0, 2))
        image = np.clip(image, 0, 1) ** gamma + rng.normal(0, noise, image.shape)
        if marker:  # a burnt-in side letter's bright block in a top corner
            x0 = 12 if rng.random() < 0.5 else RAW_SIZE - 36
            image[12:36, x0 : x0 + 24] = 1.0
        images.append(image)
    return images


TASKS = {
    task.name: task
    for task in (
        LearningTask(
            "chest_opacity",
            "2-4 faint diffuse opacities in the lungs, synthetic radiographs, per-patient exposure/position",
            prevalence=0.5,
            target_auc=0.9,
            paint=paint_chest_opacity,
        ),
        LearningTask(
            "chest_nodule",
            "one small faint nodule in a lung, synthetic radiographs, per-patient exposure/position/noise",
            prevalence=0.5,
            target_auc=0.85,
            paint=paint_chest_nodule,
        ),
        LearningTask(
            "brain_lesion",
            "small white-matter lesion on MNI152 T1 anatomy, per-patient level/rotation/bias field",
            prevalence=0.5,
            target_auc=0.8,
            paint=paint_brain_lesion,
        ),
        LearningTask(
            "brain_focal",
            "lesion 3-5 px across at 256 px, brighter or darker, on MNI152 T1 anatomy, as brain_lesion",
            prevalence=0.5,
            target_auc=0.85,
            paint=paint_brain_focal,
        ),
        LearningTask(
            "chest_focal",
            "calcification or lucency 3-5 px across at 256 px in a lung, synthetic radiographs",
            prevalence=0.5,
            target_auc=0.85,
            paint=paint_chest_focal,
        ),
        LearningTask(
            "chest_rare_marker",
            "rare (15 %) faint opacity, three scanners, side marker unrelated to the label",
            prevalence=RARE_PREVALENCE,
            target_auc=0.75,
            paint=paint_chest_rare_marker,
        ),
    )
}


def patient_splits(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(P,) split per patient, stratified by the patient's label."""
    splits = np.full(len(labels), "train", dtype=object)
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        n_test = round(len(members) * SPLIT_FRACTIONS["test"])
        n_val = max(1, round(len(members) * SPLIT_FRACTIONS["val"]))
        splits[members[:n_test]] = "test"
        splits[members[n_test : n_test + n_val]] = "val"
    return splits.astype(str)


@dataclass(frozen=True)
class RawTask:
    """One generated data set before preprocess: the raw (RAW, RAW) images and per-image facts."""

    images: list[np.ndarray]
    labels: np.ndarray  # (N,) int64 index into CLASSES
    patients: np.ndarray  # (N,) str
    splits: np.ndarray  # (N,) str: train | val | test, by patient


def draw_task(task: LearningTask, patients: int, images_per_patient: int, seed: int) -> RawTask:
    """Generate `patients` x `images_per_patient` raw images of `task`; the same `seed`, the same data."""
    rng = np.random.default_rng(seed)
    has_finding = np.zeros(patients, dtype=bool)
    has_finding[: max(2, round(patients * task.prevalence))] = True
    has_finding = rng.permutation(has_finding)
    patient_labels = np.where(has_finding, CLASSES.index("finding"), CLASSES.index("normal"))
    splits = patient_splits(patient_labels, rng)
    images, labels, owners, image_splits = [], [], [], []
    for patient in range(patients):
        for raw in task.paint(patient, bool(has_finding[patient]), images_per_patient, rng):
            images.append(raw.astype(np.float32))
            labels.append(patient_labels[patient])
            owners.append(f"P-{seed:04d}{patient:08x}")
            image_splits.append(splits[patient])
    return RawTask(images, np.array(labels), np.array(owners), np.array(image_splits))


def preprocess_task(raw: RawTask, settings: TransformSettings) -> TaskData:
    """`raw` through preprocess's own transform: what the pipeline would store and train on."""
    transform = build_transform(settings)
    images = np.stack([image_to_tensor(image, settings, transform) for image in raw.images])
    return TaskData(images, raw.labels, raw.patients, raw.splits)


def make_task(
    task: LearningTask, patients: int, images_per_patient: int, settings: TransformSettings, seed: int
) -> TaskData:
    """Generate `patients` x `images_per_patient` images of `task`, through preprocess's transform."""
    return preprocess_task(draw_task(task, patients, images_per_patient, seed), settings)


def write_store(data: TaskData, folder: Path) -> None:
    """Write `data` as preprocess's store (images.npy, index.csv, classes.json; docs/CONTRACTS.md)."""
    n = len(data.labels)
    with atomic_path(folder / "images.npy") as tmp, open(tmp, "wb") as handle:
        np.save(handle, data.images.astype(np.float16))
    index = pd.DataFrame(
        {
            "row": np.arange(n),
            "image_id": [f"{row:016x}" for row in range(n)],
            "patient_id": data.patients,
            "study_id": "",
            "label": np.array(CLASSES)[data.labels],
            "label_index": data.labels,
            "split": data.splits,
            "pixel_hash": "",
        }
    )
    with atomic_open(folder / "index.csv") as handle:
        index.to_csv(handle, index=False)
    write_json(folder / "classes.json", {"classes": CLASSES, "image_size": int(data.images.shape[-1])})


def describe(data: TaskData) -> str:
    """One line: images, patients and positives per split."""
    parts = []
    for split in ("train", "val", "test"):
        rows = data.splits == split
        positives = len(set(data.patients[rows & (data.labels == CLASSES.index("finding"))]))
        parts.append(f"{split} {rows.sum()} img/{len(set(data.patients[rows]))} pat ({positives} pos)")
    return ", ".join(parts)


def dump_examples(data: TaskData, path: Path, per_class: int = 4) -> None:
    """A PNG grid of a few images per class (for a person to look at the task)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(CLASSES), per_class, figsize=(2 * per_class, 2 * len(CLASSES)))
    for c, name in enumerate(CLASSES):
        rows = np.flatnonzero(data.labels == c)[::3][:per_class]
        for axis, row in zip(axes[c], rows, strict=False):
            axis.imshow(data.images[row, 0].astype(np.float32), cmap="gray", vmin=0, vmax=1)
            axis.set_title(name, fontsize=8)
            axis.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
