"""Print the README's recipe-key and method tables from the code, so the README cannot drift from it."""

from edgedistill.distill import METHODS
from edgedistill.recipe import describe_keys


def main() -> None:
    print("| key | default | meaning |\n|---|---|---|")
    for key, default, desc in describe_keys():
        print(f"| `{key}` | `{default}` | {desc} |")
    print("\n| name | family | parameters (default) | paper |\n|---|---|---|---|")
    for e in METHODS:
        params = ", ".join(f"`{k}`={f.default} ({f.description})" for k, f in e.obj.Params.model_fields.items())
        print(f"| `{e.name}` | {e.meta['family']} | {params or '–'} | {e.meta['paper']} |")


if __name__ == "__main__":
    main()
