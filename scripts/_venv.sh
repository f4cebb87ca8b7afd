# Sourced by scripts/serve and scripts/test: create .venv and install the project into it when
# pyproject.toml changed since the last install (a stamp file records that), so reruns are fast.
# pip's output goes to .venv/install.log; the terminal gets one line per stage, and the log's end
# if the install fails.
PYTHON="${PYTHON:-python3}"
extras="${AIGW_INSTALL_EXTRAS:-}"
stamp=".venv/.installed${extras:+-$extras}"
log=".venv/install.log"
_aigw_fresh() { [ -f "$1" ] && [ ! pyproject.toml -nt "$1" ]; }
_aigw_installed() {
  # The test extras include everything the gateway needs, so they satisfy a plain install too.
  _aigw_fresh "$stamp" || { [ -z "$extras" ] && _aigw_fresh .venv/.installed-test; }
}
if [ ! -x .venv/bin/python ]; then
  echo "aigw: creating .venv with $PYTHON…" >&2
  "$PYTHON" -m venv .venv
fi
if ! _aigw_installed; then
  echo "aigw: installing${extras:+ with [$extras]} into .venv (about a minute the first time; log: $log)…" >&2
  if ! { .venv/bin/python -m pip install --upgrade pip \
         && .venv/bin/python -m pip install -e ".${extras:+[$extras]}"; } >"$log" 2>&1; then
    tail -n 30 "$log" >&2
    echo "aigw: install failed; the whole log is in $log" >&2
    exit 1
  fi
  touch "$stamp"
  echo "aigw: installed" >&2
fi
