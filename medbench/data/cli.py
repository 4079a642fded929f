"""``medbench fetch``: download, verify and unpack a public dataset, or list the available ones.

Prints the unpacked folder on success. Errors (unknown dataset, bad manifest,
offline without a cached copy, network failure, checksum mismatch, unsafe
archive) print one line ``medbench fetch: error: ...`` and exit with status 2.
"""

from __future__ import annotations

import argparse
import sys

from medbench.data.fetch import fetch
from medbench.data.manifests import manifest_table, manifests_dir
from medbench.errors import MedbenchError


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``fetch`` arguments to ``parser`` (a subcommand parser)."""
    parser.add_argument("name", nargs="?", metavar="NAME", help="dataset name (see --list)")
    parser.add_argument("--list", action="store_true", help="list the datasets that have a manifest and exit")
    parser.add_argument("--data-dir", default=None, metavar="DIR",
                        help="cache folder to use instead of $MEDBENCH_CACHE / ~/.cache/medbench "
                             "(the dataset goes to DIR/datasets/NAME)")
    parser.add_argument("--offline", action="store_true",
                        help="never use the network (same as MEDBENCH_OFFLINE=1)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no download progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``medbench fetch``; 0 on success, 2 on a usage or fetch error (one line on stderr)."""
    try:
        if args.list:
            return _list()
        if not args.name:
            print("medbench fetch: error: give a dataset NAME, or --list to see them", file=sys.stderr)
            return 2
        path = fetch(args.name, data_dir=args.data_dir, offline=True if args.offline else None,
                     progress=not args.quiet)
    except MedbenchError as exc:
        print(f"medbench fetch: error: {exc}", file=sys.stderr)
        return 2
    print(path)
    return 0


def _list() -> int:
    table = manifest_table()
    if table.empty:
        print(f"no dataset manifests in {manifests_dir()}")
        return 0
    for row in table.itertuples(index=False):
        print(f"{row.name:<18} {row.modalities:<6} {row.title}  [{row.licence}]")
    return 0
