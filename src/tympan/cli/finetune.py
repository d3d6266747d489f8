"""``tympan finetune``: a preset with a new head for your labels, trained on your clips, in one command."""

from __future__ import annotations

import argparse
import json
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "finetune",
        help="fine-tune a model on your labelled clips (CSV file,label or one folder per label)",
        description="Fine-tune a zoo model on your own labels and write DIR/model.ckpt, which "
        "`tympan tag --checkpoint DIR/model.ckpt` uses with no other flags.",
    )
    parser.add_argument(
        "--data",
        required=True,
        help="CSV with columns file,label (or labels) or a label-folder tree; with --task sed an "
        "event table (filename,onset,offset,event_label TSV or file,onset,offset,label CSV)",
    )
    parser.add_argument(
        "--weak-data",
        help="with --task sed: a weak (clip-level) label table beside --data, its files trained on their clip "
        "labels only (DESED weak.tsv: filename,event_labels with comma-separated labels; or a file,labels CSV)",
    )
    parser.add_argument(
        "--weak-fraction",
        type=float,
        help="share of every batch taken from --weak-data (DCASE Task 4: 0.5; default: one shuffled pool)",
    )
    parser.add_argument(
        "--task",
        choices=("classify", "sed"),
        default="classify",
        help="classify: clip labels (default); sed: sound event detection with a frame-level model "
        "(e.g. --model frame_mn06), for `tympan detect`",
    )
    parser.add_argument("--model", default="mn10_as", help="zoo preset or architecture (default mn10_as)")
    parser.add_argument("--checkpoint", help="initial weights (default: the preset's official weights)")
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--epochs", type=int, help="passes over the training clips (default 10, at least --min-steps)")
    length.add_argument("--steps", type=int, help="run length in optimizer steps instead of epochs")
    parser.add_argument(
        "--min-steps",
        type=int,
        help="shortest run --epochs may give, in optimizer steps (default 120, with --task sed 80; 0: none)",
    )
    parser.add_argument("--output", default="finetuned", help="run folder (default ./finetuned)")
    parser.add_argument(
        "--batch-size", type=int, help="clips per batch (default 16, with --task sed 8; at most the data)"
    )
    parser.add_argument("--lr", type=float, help="peak learning rate of the head (default 1e-3, with --task sed 2e-3)")
    parser.add_argument(
        "--backbone-lr-factor",
        type=float,
        help="backbone rate relative to --lr (default 0.1 from pretrained weights, else 1)",
    )
    parser.add_argument("--layer-decay", type=float, help="layer-wise rate decay of the backbone, e.g. 0.75")
    parser.add_argument(
        "--freeze-bn",
        action=argparse.BooleanOptionalAction,
        help="keep the backbone's BatchNorm statistics (default: on from pretrained weights)",
    )
    parser.add_argument("--clip-seconds", type=float, help="clip length (default: median file duration, <= 10 s)")
    parser.add_argument("--val-fraction", type=float, default=0.1, help="held-out share without a split column")
    parser.add_argument(
        "--mixup", type=float, help="spectrogram mixup alpha (default 0.3, with --task sed 0; 0 disables)"
    )
    parser.add_argument("--no-pretrained", action="store_true", help="start from random weights")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
    parser.add_argument("--accelerator", default="auto", help="cpu, gpu, ... (default auto)")
    parser.add_argument("--devices", default="auto", help="number of devices (default auto)")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..train import finetune

    result = finetune(
        args.data,
        args.model,
        task=args.task,
        weak_data=args.weak_data,
        weak_fraction=args.weak_fraction,
        checkpoint=args.checkpoint,
        epochs=args.epochs,
        steps=args.steps,
        **({"min_steps": args.min_steps} if args.min_steps is not None else {}),
        output=args.output,
        batch_size=args.batch_size,
        lr=args.lr,
        backbone_lr_factor=args.backbone_lr_factor,
        layer_decay=args.layer_decay,
        freeze_bn=args.freeze_bn,
        clip_seconds=args.clip_seconds,
        val_fraction=args.val_fraction,
        mixup_alpha=args.mixup,
        pretrained=not args.no_pretrained,
        num_workers=args.workers,
        accelerator=args.accelerator,
        devices=int(args.devices) if args.devices.isdigit() else args.devices,
        seed=args.seed,
        progress=not args.quiet,
    )
    print(
        json.dumps(
            {"checkpoint": str(result.checkpoint), "labels": result.labels, "metrics": result.metrics}, indent=1
        ),
        file=sys.stdout,
    )
    return 0
