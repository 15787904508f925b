"""Independent checks of what the status page serves, run by the e2e tests.

  check.py json SCHEMA_NAME  < body   validates JSON against statuspage-v2.schema.json's $defs[SCHEMA_NAME]
                                      with the jsonschema package; prints "ok" or the errors (exit 1)
  check.py atom              < body   parses an Atom feed with feedparser; fails (exit 1) on any bozo
                                      (not well-formed) error or a feed that is not Atom 1.0; prints the
                                      entries as JSON: [{"id", "title", "updated", "content"}]
"""
import json
import pathlib
import sys


def check_json(name: str) -> int:
    import jsonschema

    schema = json.loads((pathlib.Path(__file__).parent / "statuspage-v2.schema.json").read_text())
    document = json.load(sys.stdin)
    root = dict(schema)
    root["$ref"] = "#/$defs/" + name
    validator = jsonschema.Draft202012Validator(root, format_checker=jsonschema.FormatChecker())
    errors = sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
    if errors:
        for error in errors:
            print("/".join(str(p) for p in error.absolute_path), error.message)
        return 1
    print("ok")
    return 0


def check_atom() -> int:
    import feedparser

    feed = feedparser.parse(sys.stdin.buffer.read())
    if feed.bozo:
        print(f"not a well-formed feed: {feed.bozo_exception!r}")
        return 1
    if feed.version != "atom10":
        print(f"not Atom 1.0 but {feed.version!r}")
        return 1
    for required in ("id", "title", "updated"):
        if required not in feed.feed:
            print(f"the feed has no {required}")
            return 1
    entries = []
    for entry in feed.entries:
        for required in ("id", "title", "updated"):
            if required not in entry:
                print(f"an entry has no {required}: {entry}")
                return 1
        content = entry.get("content") or [{}]
        entries.append({"id": entry.id, "title": entry.title, "updated": entry.updated,
                        "content": content[0].get("value", "")})
    print(json.dumps(entries))
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["json"] and len(sys.argv) == 3:
        sys.exit(check_json(sys.argv[2]))
    if sys.argv[1:] == ["atom"]:
        sys.exit(check_atom())
    print(__doc__)
    sys.exit(2)
