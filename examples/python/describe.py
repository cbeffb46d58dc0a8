"""Describes an image, streaming the answer, then prints the call's statistics. Every language's
example does the same; see examples/README.md.

    pip install ./bindings/python
    python examples/python/describe.py <model_dir> <image> ["prompt"]
"""
import sys

import smolvlm


def main() -> int:
    if len(sys.argv) < 3:
        print(f"usage: {sys.argv[0]} <model_dir> <image> [prompt]", file=sys.stderr)
        return 2
    prompt = sys.argv[3] if len(sys.argv) > 3 else "Describe this image."
    try:
        ctx = smolvlm.Model(sys.argv[1]).context()
        image = smolvlm.Image.from_file(sys.argv[2])
        for piece in ctx.stream(prompt, images=[image], max_tokens=256):
            print(piece, end="", flush=True)
        print()
    except smolvlm.SmolVLMError as e:
        print(e, file=sys.stderr)
        return 1
    s = ctx.stats()
    print(f"{s['decode_tokens']} tokens, {s['decode_tokens_per_s']:.1f} tok/s; vision {s['encode_ms']:.0f} ms, "
          f"prompt {s['prefill_tokens']} tokens {s['prefill_ms']:.0f} ms, total {s['total_ms']:.0f} ms",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
