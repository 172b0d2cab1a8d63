"""How bench_train_clip.py scores a trained encoder on emoji and draws its examples figure: image->text and
text->image Recall@k over a caption gallery, and a grid of held-out images with their top-3 captions."""

from __future__ import annotations

import textwrap

KS = (1, 5, 10)
EXAMPLES = 12


def retrieval(image_vectors, text_vectors, caption_of_image: list[int]) -> dict:
    """image->text R@k against all captions and against the set's own captions; text->image R@k for the set's
    captions over the set's images. ``image_text_recall`` needs every caption to have an image, so the
    all-caption image->text side uses ``recall_at_k`` (the same ranking, ties counted against)."""
    from embedsearch.metrics import image_text_recall, recall_at_k

    own = sorted(set(caption_of_image))
    column = {caption: i for i, caption in enumerate(own)}
    both = image_text_recall(image_vectors, text_vectors[own], [[column[c]] for c in caption_of_image], KS)
    everything = recall_at_k(image_vectors, text_vectors, [[c] for c in caption_of_image], KS)
    return {
        "images": len(caption_of_image),
        "gallery": len(text_vectors),
        "own_captions": len(own),
        **{f"image_to_text_R@{k}": value for k, value in zip(KS, everything, strict=True)},
        **{f"text_to_image_R@{k}": both[f"text_to_image_R@{k}"] for k in KS},
        **{f"image_to_text_R@{k}_own_captions": both[f"image_to_text_R@{k}"] for k in KS},
    }


def plot_examples(encoder, texts: tuple, sets: dict[str, list[dict]], spec: dict) -> None:
    """A grid of held-out images (half train ids, half test ids, seeded), each with its top-3 captions of all
    1,911 (green: the right one), drawn with matplotlib's Agg canvas, written to ``spec["examples_png"]``."""
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    captions, text_vectors = texts
    picked = _pick_examples(sets, spec)
    vectors = encoder.encode_image([r["image"] for _, r in picked])
    columns = 4
    rows = -(-len(picked) // columns)
    figure = Figure(figsize=(4 * columns, 3.6 * rows), dpi=100)
    FigureCanvasAgg(figure)
    figure.suptitle(f"held-out vendor {spec['heldout']}: top-3 of all {len(captions):,} captions (green: right)")
    for place, ((set_name, record), vector) in enumerate(zip(picked, vectors, strict=True)):
        top = np.argsort(-(text_vectors @ vector))[:3]
        _draw_example(figure.add_subplot(rows, columns, place + 1), set_name, record, [captions[i] for i in top])
    figure.subplots_adjust(left=0.02, right=0.98, top=0.92, bottom=0.1, hspace=0.75, wspace=0.3)
    figure.savefig(spec["examples_png"])


def _pick_examples(sets: dict[str, list[dict]], spec: dict) -> list[tuple[str, dict]]:
    """``EXAMPLES`` records, as many from each set, a seeded choice."""
    import numpy as np

    rng = np.random.default_rng(spec["seed"])
    picked = []
    for set_name, records in sets.items():
        records = records[: spec["limit"]] if spec["limit"] else records
        count = min(EXAMPLES // len(sets), len(records))
        picked += [(set_name, records[i]) for i in sorted(rng.choice(len(records), count, replace=False))]
    return picked


def _draw_example(axes, set_name: str, record: dict, top: list[str]) -> None:
    """One image with its caption as the title and its top captions below (the right one green and bold)."""
    import numpy as np

    from embedsearch.data.images import load_image

    axes.imshow(np.asarray(load_image(record["image"])))
    axes.set_axis_off()
    axes.set_title(f"{set_name}: {textwrap.shorten(record['text'], 36)}", fontsize=9)
    for line, caption in enumerate(top):
        right = caption == record["text"].strip()
        axes.text(
            0.5,
            -0.06 - 0.13 * line,
            f"{line + 1}. {textwrap.shorten(caption, 38)}",
            transform=axes.transAxes,
            ha="center",
            va="top",
            fontsize=9,
            color="green" if right else "black",
            fontweight="bold" if right else "normal",
        )
