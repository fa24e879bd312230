import pytest

from tests.measuring.fakes import FakeClock


@pytest.fixture
def clock(monkeypatch):
    """Fake time for the measuring loops and the meters' windows."""
    import hwprof.measuring.arm as arm
    import hwprof.measuring.measure as measure
    import hwprof.measuring.meters.base as base
    c = FakeClock()
    for module in (measure, base, arm):
        monkeypatch.setattr(module, "time", c)
    return c
