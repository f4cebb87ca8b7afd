import httpx, pytest

@pytest.mark.parametrize("i", range(6))
def test_smoke(gateway, upstream, admin_headers, i):
    with httpx.Client(base_url=gateway.url, timeout=5) as c:
        r = c.get("/healthz")
