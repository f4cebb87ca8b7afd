# Sourced by scripts/serve and scripts/test: create .venv and install the project into it when
# pyproject.toml changed since the last install (a stamp file records that), so reruns are fast.
PYTHON="${PYTHON:-python3}"
extras="${AIGW_INSTALL_EXTRAS:-}"
stamp=".venv/.installed${extras:+-$extras}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e ".${extras:+[$extras]}"
  touch "$stamp"
fi
