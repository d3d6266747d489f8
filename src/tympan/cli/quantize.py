"""``tympan quantize``: quantisation-aware fine-tuning of a trained scene model and int8 export."""

from __future__ import annotations

import argparse
import json
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "quantize",
        help="QAT fine-tuning of a trained scene model, int8 conversion, accuracy and size before / after",
        description="Fine-tune a float checkpoint with quantisation-aware training (DCASE23 run_qat recipe), convert "
        "it to int8 (torchao PT2E, X86 inductor recipe) and write DIR/model_int8.pt2 (an exported program; its int8 "
        "kernels run under torch.compile), DIR/model_int8.json and DIR/quantize.json with accuracy, parameters, MACs "
        "and bytes of the float and the int8 model.",
    )
    parser.add_argument("checkpoint", help="self-describing tympan checkpoint of the float model")
    parser.add_argument("--data", required=True, help="labelled clips (CSV with file,label[,device,split] or folders)")
    parser.add_argument("--epochs", type=int, default=20, help="QAT epochs (default 20, as the reference)")
    parser.add_argument("--output", default="quantized", help="run folder (default ./quantized)")
    parser.add_argument("--batch-size", type=int, default=64, help="clips per batch (default 64)")
    parser.add_argument("--lr", type=float, default=5e-5, help="learning rate (default 5e-5)")
    parser.add_argument("--clip-seconds", type=float, help="clip length (default: median file duration)")
    parser.add_argument("--accelerator", default="auto", help="device for QAT: cpu, gpu, ... (default auto)")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..train.quantize import quantize

    result = quantize(
        args.checkpoint,
        args.data,
        epochs=args.epochs,
        output=args.output,
        batch_size=args.batch_size,
        lr=args.lr,
        clip_seconds=args.clip_seconds,
        accelerator=args.accelerator,
        seed=args.seed,
        progress=not args.quiet,
    )
    rows = [
        f"{name:5s} accuracy {r['accuracy']:.3f}  agreement {r['agreement']:.3f}  params {r['params']:,}  "
        f"MACs {r['macs']:,}  weights {r['weight_bytes']:,} B  file {r['state_bytes']:,} B"
        for name, r in (("float", result.float), ("int8", result.int8))
    ]
    print("\n".join([*rows, f"int8 model: {result.model_path}"]), file=sys.stdout)
    print(json.dumps({"report": str(result.output_dir / "quantize.json")}), file=sys.stdout)
    return 0
