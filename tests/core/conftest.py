import pytest

from superlinear.core import Engine, SessionService
from superlinear.core.testing import FakeModel, FakeSnapshotStore, FakeTokenizer, FixedClock, SequentialIds


@pytest.fixture
def engine():
    eng = Engine().start()
    yield eng
    eng.stop()


@pytest.fixture
def model():
    return FakeModel(FakeTokenizer())


@pytest.fixture
def rules():
    """Stop-rule factories the service uses; tests append their own."""
    return []


@pytest.fixture
def service(model, engine, rules):
    return SessionService(
        model=model,
        tok=model.tok,
        engine=engine,
        store=FakeSnapshotStore(),
        clock=FixedClock(),
        ids=SequentialIds(),
        stop_rules=lambda request: [r for r in (f(request.sampling) for f in rules) if r is not None],
        entropy=lambda: 1234,
        default_max_seq_len=2048,
    )
