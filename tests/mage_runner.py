"""Mage's runner, replayed: how mage-ai 0.9.80 runs a data integration destination
block and a destination's connection test, with Mage's own functions wherever they can
be imported. Run with the Python of .venv-mage (mage-ai installed without its
dependencies) and PYTHONPATH holding a `mage_integrations` package whose
destinations/amazon_s3/__init__.py is target-s3's shim (see test_mage.py).

    python mage_runner.py load REQUEST.json
    python mage_runner.py test_connection REQUEST.json

REQUEST holds config, and for a load: stream, input_file, state_file, source_state_file,
catalog (or null). Prints one JSON object: returncode, exception (the text of what the
block raised, or null), logged (the messages handed to Mage's logger), source_state (for
a load: what the source reads as its state next).
"""

import importlib
import json
import subprocess
import sys
from json import JSONDecoder

from mage_ai.data_integrations.logger.utils import print_log_from_line
from mage_ai.shared.hash import dig
from mage_ai.shared.security import filter_out_config_values

# Mage runs destinations with the interpreter running Mage
# (mage_ai.data_preparation.models.constants.PYTHON_COMMAND).
PYTHON_COMMAND = sys.executable


class RecordingLogger:
    """Stands in for the logger Mage hands print_log_from_line (a DictLogger writing to
    the block's log): it keeps each message, as the block's log would show it."""

    def __init__(self):
        self.messages = []

    def info(self, message, **kwargs):
        self.messages.append(message)


def destination_module_file_path(uuid: str) -> str:
    """As mage_ai's data_integration.utils.destination_module_file_path: the file of the
    imported module (that module pulls in pandas, so the two lines are replayed)."""
    module = importlib.import_module(f"mage_integrations.destinations.{uuid}")
    return module.__file__


def load(request: dict) -> dict:
    """data_integration/utils.py __execute_destination, for one stream read from disk."""
    config = dict(request["config"])
    stream = request["stream"]
    logger = RecordingLogger()
    logging_tags = {}
    tags = dict(block_tags=dict(index=0, ingest_mode="disk", parent_stream=stream,
                                stream=stream, type="data_exporter", uuid="s3_export"))
    config["table"] = stream
    args = [PYTHON_COMMAND, destination_module_file_path("amazon_s3"), "--log_to_stdout", "1",
            "--state", request["state_file"], "--input_file_path", request["input_file"]]
    if request.get("catalog"):
        args += ["--catalog_json", json.dumps(request["catalog"])]
    args += ["--config_json", json.dumps(config)]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    exception = None
    try:
        for line in proc.stdout:
            print_log_from_line(line, config=config, logger=logger, logging_tags=logging_tags,
                                tags=tags)
        proc.communicate()
        if proc.returncode != 0 and proc.returncode is not None:
            raise subprocess.CalledProcessError(proc.returncode, filter_out_config_values(
                str(proc.args), config))
    except Exception as error:  # the block fails with this
        exception = str(error)
        # The block's exception drops Mage's end of the pipe; the destination finishes alone.
        proc.stdout.close()
        proc.wait(timeout=120)
    update_source_state_from_destination_state(request["source_state_file"], request["state_file"])
    with open(request["source_state_file"]) as f:
        source_state = json.loads(f.read())
    return dict(returncode=proc.returncode, exception=exception, logged=logger.messages,
                source_state=source_state)


def update_source_state_from_destination_state(source_path: str, destination_path: str) -> None:
    """What mage_integrations.sources.utils.update_source_state_from_destination_state
    does (that package is not on the package index): the destination state file's last
    line becomes the source's state file; an empty file gives {"bookmarks": {}}."""
    try:
        with open(destination_path) as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        lines = []
    with open(source_path, "w") as f:
        f.write(lines[-1] if lines else json.dumps(dict(bookmarks={})))


def test_connection(request: dict) -> dict:
    """data_integration/utils.py test_connection: stdout and stderr apart, 10 s; on a
    non-zero exit the reason is `tags.error` of the JSON object on a stderr line that
    starts with ERROR (else all of stderr)."""
    config = request["config"]
    args = [PYTHON_COMMAND, destination_module_file_path("amazon_s3"), "--config_json",
            json.dumps(config), "--test_connection"]
    proc = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=10)
    exception = None
    try:
        proc.check_returncode()
    except subprocess.CalledProcessError as err:
        stderr = err.stderr.decode("utf-8")
        error = stderr
        for line in stderr.split("\n"):
            if line.startswith("ERROR"):
                try:
                    error = dig(next(extract_json_objects(line)), "tags.error")
                except Exception:
                    error = line
            elif not error and line.startswith("CRITICAL"):
                error = line
        exception = filter_out_config_values(error, config)
    return dict(returncode=proc.returncode, exception=exception, logged=[], source_state=None)


def extract_json_objects(text: str):
    """mage_ai.shared.parsers.extract_json_objects, whose module imports numpy, pandas,
    polars and scipy: the JSON objects found in text, in order."""
    decoder = JSONDecoder()
    position = 0
    while (start := text.find("{", position)) != -1:
        try:
            result, length = decoder.raw_decode(text[start:])
            yield result
            position = start + length
        except ValueError:
            position = start + 1


if __name__ == "__main__":
    mode, path = sys.argv[1], sys.argv[2]
    with open(path) as f:
        request = json.load(f)
    result = load(request) if mode == "load" else test_connection(request)
    print(json.dumps(result))
