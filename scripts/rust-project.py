#!/usr/bin/env python3
"""Adds the cmamap driver crate to a rust-project.json that the kernel generated.

The kernel's generator finds an external module's crate roots only next to a Kbuild that
names them; ours is driver/cmamap_main.rs under the top-level Kbuild, so it is added here,
with the dependencies and cfgs of the kernel's own crates.

    scripts/rust-project.py IN OUT ROOT_MODULE
"""
import json
import sys


def main() -> None:
    source, target, root_module = sys.argv[1:4]
    with open(source) as f:
        project = json.load(f)
    crates = project["crates"]
    index = {crate["display_name"]: i for i, crate in enumerate(crates)}
    kernel = crates[index["kernel"]]
    deps = [
        {"crate": index[name], "name": name}
        for name in ("core", "kernel", "pin_init", "zerocopy", "zerocopy_derive")
        if name in index
    ]
    crates[:] = [c for c in crates if c["root_module"] != root_module]
    crates.append(
        {
            "display_name": "cmamap",
            "root_module": root_module,
            "is_workspace_member": True,
            "deps": deps,
            "cfg": kernel["cfg"],
            "edition": "2021",
            "env": {"RUST_MODFILE": "This is only for rust-analyzer"},
        }
    )
    with open(target, "w") as f:
        json.dump(project, f, sort_keys=True, indent=4)


if __name__ == "__main__":
    main()
