#!/usr/bin/env bash
# Runs critest (cri-tools' CRI validation suite) against a crio socket, skipping every spec listed in the
# ledger tests/critest/ledger.tsv (one "<exact spec text><TAB><reason>" per line). Before running it checks
# the ledger against the specs compiled into the critest binary: a ledger line naming a spec that critest
# no longer has (stale line) or with a malformed reason is an error. Writes a JUnit report to
# _output/critest-junit.xml (and a ginkgo JSON report next to it), prints a summary, and exits non-zero if
# any spec failed or none passed.
#
# Usage: hack/critest.sh SOCKET [-- EXTRA_CRITEST_ARGS...]   run critest (SOCKET: a path or unix://PATH)
#        hack/critest.sh --list                             print the specs that would run
#        hack/critest.sh --list-all                         print every spec with its ledger reason (or "run")
# Environment: CRITEST (default _output/bin/critest, built by hack/build-cri-tools.sh if missing),
#              CRITEST_LEDGER (default tests/critest/ledger.tsv).
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CRITEST=${CRITEST:-$REPO_ROOT/_output/bin/critest}
LEDGER=${CRITEST_LEDGER:-$REPO_ROOT/tests/critest/ledger.tsv}
OUT_DIR=$REPO_ROOT/_output
JUNIT=$OUT_DIR/critest-junit.xml
JSON_REPORT=$OUT_DIR/critest-report.json

usage() { sed -n '9,13s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; }
die() {
    echo "critest.sh: error: $*" >&2
    exit 1
}

mode=run
socket=
extra=()
while (($#)); do
    case $1 in
        --list) mode=list ;;
        --list-all) mode=list-all ;;
        -h | --help)
            usage
            exit 0
            ;;
        --)
            shift
            extra=("$@")
            break
            ;;
        -*) die "unknown option: $1 (see --help)" ;;
        *)
            [[ -z $socket ]] || die "more than one SOCKET given (see --help)"
            socket=$1
            ;;
    esac
    shift
done
[[ $mode != run || -n $socket ]] || {
    usage >&2
    exit 2
}

PYTHON=$REPO_ROOT/.venv/bin/python
[[ -x $PYTHON ]] || PYTHON=$(command -v python3) || die "python3 is needed to read critest's JSON reports"
[[ -f $LEDGER ]] || die "ledger not found: $LEDGER"
if [[ ! -x $CRITEST ]]; then
    [[ $CRITEST == "$REPO_ROOT/_output/bin/critest" ]] || die "CRITEST=$CRITEST is not executable"
    bash "$REPO_ROOT/hack/build-cri-tools.sh"
fi

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# 1. The specs compiled into critest: a dry run (nothing is contacted) with a JSON report. Benchmarks come
#    out as skipped (critest adds ginkgo.skip=benchmark in validation mode) and are left out.
#    critest reads ./crictl.yaml, so run it from an empty directory.
if ! (cd "$WORK" && "$CRITEST" --runtime-endpoint unix:///nonexistent/critest-dry-run.sock \
    -ginkgo.dry-run -ginkgo.no-color -ginkgo.json-report="$WORK/dry-run.json" >"$WORK/dry-run.log" 2>&1); then
    tail -n 30 "$WORK/dry-run.log" >&2
    die "critest dry run failed"
fi

# 2. Check the ledger against that list; write the skip regex and the lists.
"$PYTHON" - "$WORK/dry-run.json" "$LEDGER" "$WORK" <<'EOF'
import json
import re
import sys

report_path, ledger_path, work = sys.argv[1:4]
specs = []
for suite in json.load(open(report_path)):
    for r in suite.get("SpecReports") or []:
        if r.get("LeafNodeType") != "It" or r.get("State") == "skipped":
            continue
        specs.append(" ".join([*(r.get("ContainerHierarchyTexts") or []), r["LeafNodeText"]]))
known = set(specs)

REASON = re.compile(r"host: \S.*|not built yet: (?:issue [1-9][0-9]*|no open issue)(?: \(.+\))?")
errors, ledger = [], {}
for n, line in enumerate(open(ledger_path, encoding="utf-8"), 1):
    line = line.rstrip("\n")
    if not line.strip() or line.startswith("#"):
        continue
    where = f"{ledger_path}:{n}"
    parts = line.split("\t")
    if len(parts) != 2 or not parts[0] or not parts[1]:
        errors.append(f"{where}: expected '<spec text><TAB><reason>', got {line!r}")
        continue
    text, reason = parts
    if not REASON.fullmatch(reason):
        errors.append(f"{where}: reason must be 'host: ...' or 'not built yet: issue N [(...)]' "
                      f"or 'not built yet: no open issue (...)', got {reason!r}")
    if text in ledger:
        errors.append(f"{where}: duplicate spec {text!r}")
    elif text not in known:
        errors.append(f"{where}: stale line, critest has no spec {text!r}")
    ledger[text] = reason
if errors:
    print("critest.sh: the ledger does not match this critest binary:", file=sys.stderr)
    for e in errors:
        print("  " + e, file=sys.stderr)
    sys.exit(1)

def go_quote(s: str) -> str:
    # Escape RE2 metacharacters; every other character is literal in Go's regexp.
    return re.sub(r"([\\.+*?()|\[\]{}^$])", r"\\\1", s)

# ginkgo matches the skip regex against "<suite description> <spec text>", so anchor each ledger text at the
# end and after a space; that cannot match a spec whose text merely contains a ledger text.
skip = " (?:" + "|".join(go_quote(t) for t in sorted(ledger)) + ")$" if ledger else ""
with open(f"{work}/skip.re", "w") as f:
    f.write(skip)
with open(f"{work}/run.txt", "w") as f:
    f.writelines(t + "\n" for t in specs if t not in ledger)
with open(f"{work}/all.tsv", "w") as f:
    f.writelines(f"{t}\t{ledger.get(t, 'run')}\n" for t in sorted(specs))
EOF

case $mode in
    list)
        cat "$WORK/run.txt"
        exit 0
        ;;
    list-all)
        cat "$WORK/all.tsv"
        exit 0
        ;;
esac

if [[ $socket == unix://* ]]; then
    endpoint=$socket
    socket=${socket#unix://}
else
    endpoint=unix://$socket
fi
[[ -S $socket ]] || die "$socket is not a unix socket (is the daemon running?)"

skip_args=()
skip_re=$(<"$WORK/skip.re")
[[ -z $skip_re ]] || skip_args=("-ginkgo.skip=$skip_re")
expected=$(wc -l <"$WORK/run.txt")
total=$(wc -l <"$WORK/all.tsv")
mkdir -p "$OUT_DIR"
rm -f "$JUNIT" "$JSON_REPORT"
echo "critest.sh: running $expected of $total critest specs against $endpoint ($((total - expected)) in the ledger)"

rc=0
(cd "$WORK" && "$CRITEST" --runtime-endpoint "$endpoint" --image-endpoint "$endpoint" -ginkgo.v -ginkgo.no-color "${skip_args[@]}" \
    -ginkgo.junit-report="$JUNIT" -ginkgo.json-report="$JSON_REPORT" "${extra[@]}") || rc=$?

# Summary from the JSON report (the JUnit file carries the same results for CI).
[[ -f $JSON_REPORT ]] || die "critest exited with $rc and wrote no report"
"$PYTHON" - "$JSON_REPORT" "$WORK/run.txt" "$rc" <<'EOF'
import json
import sys

report_path, run_path, rc = sys.argv[1], sys.argv[2], int(sys.argv[3])
expected = set(open(run_path).read().splitlines())
states: dict[str, list[str]] = {}
for suite in json.load(open(report_path)):
    for r in suite.get("SpecReports") or []:
        if r.get("LeafNodeType") != "It":
            if r.get("State") not in ("passed", "skipped"):  # a failed BeforeSuite/AfterSuite
                states.setdefault("failed", []).append(f"[{r.get('LeafNodeType')}]")
            continue
        text = " ".join([*(r.get("ContainerHierarchyTexts") or []), r["LeafNodeText"]])
        if r["State"] == "skipped" and text not in expected:
            continue  # ledger or benchmark
        states.setdefault(r["State"], []).append(text)
passed = len(states.pop("passed", []))
skipped = states.pop("skipped", [])
bad = [(s, t) for s, ts in sorted(states.items()) for t in ts]
print(f"critest.sh: {passed} passed, {len(bad)} failed, {len(skipped)} skipped by critest itself")
for t in skipped:
    print(f"  skipped: {t}")
for s, t in bad:
    print(f"  {s}: {t}")
if rc != 0 and not bad:
    print(f"critest.sh: critest exited with status {rc}")
if passed == 0 and not bad:
    print("critest.sh: no spec passed; a run that tests nothing is a failure")
sys.exit(1 if bad or rc != 0 or passed == 0 else 0)
EOF
