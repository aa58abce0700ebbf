"""Two writers replacing the same partitions at once take turns: one consistent copy survives."""

import threading

from candle_pipeline.resources.warehouse import WarehouseResource, ensure_tables
from candle_pipeline.warehouse.partition_store import replace_partitions
from candle_pipeline.warehouse.tables import TABLES
from candle_pipeline_tests.reliability.test_atomic_partitions import partition_states
from candle_pipeline_tests.reliability.writer import (
    PARTITIONS,
    ROWS_PER_PARTITION,
    generation_frame,
)

ROUNDS = 6
WRITER_GENERATIONS = (100, 200)


def test_concurrent_writers_never_duplicate_or_mix(warehouse_url: str) -> None:
    ensure_tables(warehouse_url)
    errors: list[BaseException] = []
    snapshots: list[dict] = []
    start = threading.Barrier(len(WRITER_GENERATIONS) + 1)
    done = threading.Event()

    def write(base: int) -> None:
        warehouse = WarehouseResource(database_url=warehouse_url)
        start.wait()
        try:
            with warehouse.connection() as conn:
                for round_number in range(ROUNDS):
                    frame = generation_frame(base + round_number)
                    replace_partitions(conn, TABLES["candles"], PARTITIONS, frame)
        except BaseException as error:
            errors.append(error)

    def read() -> None:
        start.wait()
        while not done.is_set():
            snapshots.append(partition_states(warehouse_url))

    writers = [threading.Thread(target=write, args=(base,)) for base in WRITER_GENERATIONS]
    reader = threading.Thread(target=read)
    for thread in [*writers, reader]:
        thread.start()
    for thread in writers:
        thread.join()
    done.set()
    reader.join()

    assert not errors, errors
    final = partition_states(warehouse_url)
    snapshots.append(final)
    for states in snapshots:
        if not states:
            continue
        assert set(states) == set(PARTITIONS)
        for rows, lowest, highest in states.values():
            assert rows == ROWS_PER_PARTITION
            assert lowest == highest
        assert len({lowest for _, lowest, _ in states.values()}) == 1
    last_generations = {base + ROUNDS - 1 for base in WRITER_GENERATIONS}
    assert {lowest for _, lowest, _ in final.values()} <= last_generations
    assert len(snapshots) > 1, "the reader looked while writers were writing"
