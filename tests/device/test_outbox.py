"""The outbox keeps messages on disk until acknowledged, across restarts, within its bound."""

import logging

from device.outbox import Outbox


def test_messages_survive_a_restart_in_order(tmp_path):
    outbox = Outbox(tmp_path / "unsent.sqlite3", max_messages=100)
    for number in range(5):
        outbox.put("topic", f"message {number}")
    outbox.close()

    reopened = Outbox(tmp_path / "unsent.sqlite3", max_messages=100)

    assert [message.payload for message in reopened.oldest()] == [f"message {n}" for n in range(5)]


def test_an_acknowledged_message_is_removed_and_only_it(tmp_path):
    outbox = Outbox(tmp_path / "unsent.sqlite3", max_messages=100)
    outbox.put("topic", "first")
    outbox.put("topic", "second")

    outbox.remove(outbox.oldest(1)[0].id)

    assert [message.payload for message in outbox.oldest()] == ["second"]


def test_sequence_numbers_continue_after_a_restart(tmp_path):
    outbox = Outbox(tmp_path / "unsent.sqlite3", max_messages=100)
    assert [outbox.next_sequence() for _ in range(3)] == [1, 2, 3]
    outbox.close()

    assert Outbox(tmp_path / "unsent.sqlite3", max_messages=100).next_sequence() == 4


def test_a_full_outbox_drops_the_oldest_and_says_so(tmp_path, caplog):
    outbox = Outbox(tmp_path / "unsent.sqlite3", max_messages=3)

    with caplog.at_level(logging.WARNING, logger="device.outbox"):
        for number in range(5):
            outbox.put("topic", f"message {number}")

    assert [message.payload for message in outbox.oldest()] == ["message 2", "message 3", "message 4"]
    assert outbox.dropped == 2
    assert "dropped the oldest 1 unsent message" in caplog.text
