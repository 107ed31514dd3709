"""Which errors `ProgressBoard` explains, and how (engine/peer_progress.py); the hung process itself is
in test_distributed.py."""

import json

import pytest

from mask_rcnn_ext.engine import peer_progress
from mask_rcnn_ext.engine.peer_progress import PeerWaitError, ProgressBoard

GLOO_TIMEOUT = "[gloo/transport/tcp/unbound_buffer.cc:78] Timed out waiting 6000ms for recv operation to complete"


class DictStore:
    """The part of a c10d store the board uses."""

    def __init__(self, values):
        self.values = values

    def set_timeout(self, timeout):
        pass

    def check(self, keys):
        return all(key in self.values for key in keys)

    def get(self, key):
        return self.values[key]


@pytest.fixture
def board(monkeypatch):
    """Rank 0 of 3: rank 1 reported an earlier phase, rank 2 nothing."""
    monkeypatch.setattr(peer_progress.comm, "get_world_size", lambda: 3)
    monkeypatch.setattr(peer_progress.comm, "get_rank", lambda: 0)
    board = ProgressBoard.__new__(ProgressBoard)
    board.rank = 0
    board.store = DictStore(
        {
            "mask_rcnn_ext/progress/0": json.dumps({"phase": "iteration 3: backward", "time": 0}),
            "mask_rcnn_ext/progress/1": json.dumps({"phase": "iteration 3: data loading", "time": 0}),
        }
    )
    return board


def test_a_timed_out_wait_names_the_processes_behind(board):
    with pytest.raises(PeerWaitError) as raised, board.naming_laggards("KEY.MINUTES"):
        raise RuntimeError(GLOO_TIMEOUT)
    message = str(raised.value)
    assert message.startswith("Rank 0 stopped waiting for the other processes in 'iteration 3: backward'")
    assert "Their last reports, the oldest first: rank 1: 'iteration 3: data loading'" in message
    assert "no report from rank(s) [2]" in message
    assert "KEY.MINUTES sets how long they wait" in message


@pytest.mark.parametrize("error", [ValueError("timeout reading s3://bucket/image.jpg"), KeyError("loss_mask")])
def test_other_errors_pass_as_they_are(board, error):
    with pytest.raises(type(error)) as raised, board.naming_laggards("KEY.MINUTES"):
        raise error
    assert raised.value is error


def test_an_explained_wait_is_not_explained_again(board):
    explained = PeerWaitError("Rank 0 stopped waiting ... timed out waiting ... EVAL_TIMEOUT_MINUTES")
    with pytest.raises(PeerWaitError) as raised, board.naming_laggards("TIMEOUT_MINUTES"):
        raise explained
    assert raised.value is explained
