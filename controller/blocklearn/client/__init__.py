"""The assistant's side of Blocklearn: search for few-shot examples, record what the person ran.

    from blocklearn.client import Client, few_shot_messages

    with Client("http://127.0.0.1:8081") as client:
        found = client.search("list the pods of kube-system")
        messages = [*few_shot_messages(found), {"role": "user", "content": request}]
        ...  # the model suggests a cell, the person edits and runs it
        client.record_block(context=[request], generated=suggested, executed=ran, exit_code=0,
                            gen_trace_id=trace_id, retrieved=found)

Synchronous, as most assistant loops that call a model are; an asyncio program calls it through
`asyncio.to_thread`. Search goes to the index over HTTP (`requests`, retried on 503 with backoff by
`tenacity`); `record_block` writes the Block through the Kubernetes API with the official client, from
the kubeconfig or, in a pod, its ServiceAccount. Imports neither kopf nor the emulator.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, cast

import requests
import tenacity
from kubernetes.client import CustomObjectsApi
from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from blocklearn import API_VERSION, BLOCKS, GROUP, VERSION
from blocklearn.embed.text import render_cell
from blocklearn.resources.models import MAX_CELLS, MAX_RETRIEVED, BlockSpec, Cell, Doc
from blocklearn.resources.names import hashed_name
from blocklearn.runtime import retry
from blocklearn.runtime.kubeclient import api_client
from blocklearn.search.schema import (
    DEFAULT_K,
    CellsQuery,
    SearchRequest,
    SearchResponse,
    SearchResult,
    describe,
)

__all__ = [
    "TRACE_ANNOTATION",
    "BadRequestError",
    "BlocklearnError",
    "Client",
    "ForbiddenError",
    "Recorded",
    "Retrieved",
    "SearchResponse",
    "SearchResult",
    "UnauthorizedError",
    "UnavailableError",
    "block_name",
    "build_block",
    "few_shot_messages",
    "retrieved_names",
]

# What the assistant was shown: a search's answer, its results, or Example names, best first.
Retrieved = SearchResponse | Iterable[SearchResult | str]

# The full trace id, kept beside the name derived from it (a name cannot hold every character).
TRACE_ANNOTATION = f"{GROUP}/trace-id"
_CONFLICT_RETRIES = 5  # optimistic-concurrency retries of one update, before giving up


class BlocklearnError(Exception):
    """The index refused or failed a request; `message` is the server's own explanation."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"the index answered {status}: {message}" if status else message)
        self.status, self.message = status, message


class BadRequestError(BlocklearnError):
    """400, 413 or 415: the request is wrong (the message names the field); retrying will not help.
    Status 0: the client found it wrong itself and sent nothing."""


class UnauthorizedError(BlocklearnError):
    """401: no token, or a token the index does not accept."""


class ForbiddenError(BlocklearnError):
    """403: the token is valid, but may not search this namespace."""


class UnavailableError(BlocklearnError):
    """503 (index not ready, TokenReview unanswered) or the index unreachable, after every retry."""


_ERRORS: dict[int, type[BlocklearnError]] = {
    400: BadRequestError,
    413: BadRequestError,
    415: BadRequestError,
    401: UnauthorizedError,
    403: ForbiddenError,
    503: UnavailableError,
}


@dataclass(frozen=True)
class Recorded:
    """What `record_block` did: created the Block, updated it, or found it already as recorded."""

    namespace: str
    name: str
    action: Literal["created", "updated", "unchanged"]


class Client:
    """A client of one index (search) and of the Kubernetes API (recording Blocks).

    `token` or `token_file` authenticates searches (the index's shared token or a ServiceAccount
    token); the file is read at each request, so a rotated projected token is picked up. Searches
    that get 503 or cannot connect are retried `retries` times with exponential backoff and jitter
    (search only reads, so a retry is always safe); `timeout` bounds each attempt.
    """

    def __init__(
        self,
        url: str = "http://127.0.0.1:8081",
        token: str | None = None,
        *,
        token_file: str | Path | None = None,
        namespace: str = "default",
        timeout: float = 10.0,
        retries: int = 4,
        backoff: float = 0.5,
        max_backoff: float = 8.0,
        kubeconfig: str | None = None,
    ) -> None:
        if token is not None and token_file is not None:
            raise ValueError("give token or token_file, not both")
        self.url = url.rstrip("/")
        self.namespace = namespace
        self.timeout = timeout
        self._token = token
        self._token_file = Path(token_file) if token_file is not None else None
        self._kubeconfig = kubeconfig
        self._session = requests.Session()
        self._kube: Any = None  # the Kubernetes ApiClient, made on the first record_block
        self._retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(UnavailableError),
            stop=tenacity.stop_after_attempt(retries + 1),
            wait=retry.exponential(backoff, max_backoff),
            reraise=True,
        )

    # -- search ----------------------------------------------------------------------------------

    def search(
        self,
        query: str | None = None,
        *,
        cells: Sequence[Cell | str] | None = None,
        k: int = DEFAULT_K,
        namespace: str | None = None,
        all_namespaces: bool = False,
        distinct: bool = True,
        min_score: float = -1.0,
    ) -> SearchResponse:
        """The k past corrections nearest to a request, given as text or as notebook cells (a str
        cell is markup; only the last 32 are sent, as a Block keeps no more), best first. Distinct
        answers unless `distinct=False`. BadRequestError (status 0) for what the index would refuse."""
        if (query is None) == (cells is None):
            raise ValueError("give either query or cells")
        try:
            request = SearchRequest(
                query=query
                if query is not None
                else CellsQuery(cells=[_markup(c) for c in (cells or [])[-MAX_CELLS:]]),
                k=k,
                namespace=None if all_namespaces else namespace or self.namespace,
                min_score=min_score,
                distinct=distinct,
            )
        except ValidationError as exc:  # what the index would answer 400 to: the same words
            raise BadRequestError(0, f"not a valid search: {describe(exc)}") from None
        body = request.model_dump(mode="json", by_alias=True, exclude_none=True)
        answer = self._retrying(self._call, "POST", "/v1/search", body)
        return SearchResponse.model_validate(answer)

    def openapi(self) -> dict[str, Any]:
        """The index's OpenAPI document."""
        return cast(dict[str, Any], self._retrying(self._call, "GET", "/openapi.json", None))

    def _call(self, method: str, path: str, body: dict[str, Any] | None) -> Any:
        headers = {"Accept": "application/json"}
        token = self._read_token()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        try:
            resp = self._session.request(
                method, self.url + path, json=body, headers=headers, timeout=self.timeout
            )
        except requests.Timeout as exc:
            message = f"the index at {self.url} did not answer within {self.timeout} s"
            raise UnavailableError(0, message) from exc
        except requests.ConnectionError as exc:
            why = retry.root_cause(exc)
            raise UnavailableError(0, f"cannot reach the index at {self.url}: {why}") from exc
        if resp.status_code == 200:
            return resp.json()
        try:
            error = resp.json()
        except ValueError:
            error = None
        if isinstance(error, dict) and "error" in error:
            message = str(error["error"])
        else:
            message = resp.text.strip() or str(resp.reason)
        raise _ERRORS.get(resp.status_code, BlocklearnError)(resp.status_code, message)

    def _read_token(self) -> str | None:
        """The token to send; refused, never repeated, when it cannot be a bearer token (a line
        break or a control character would also make `requests` quote it in its error)."""
        source = "the token"
        token = self._token
        if self._token_file is not None:
            source = f"the token in {self._token_file}"
            try:
                token = self._token_file.read_bytes().decode().strip()
            except UnicodeDecodeError:
                raise BlocklearnError(0, f"the token file {self._token_file} is not UTF-8 text") from None
        if token and not (token.isascii() and token.isprintable()):
            raise BlocklearnError(
                0,
                f"{source} holds a line break, a control character or a non-ASCII character, which"
                " a bearer token cannot: it was not sent",
            )
        return token

    # -- record ----------------------------------------------------------------------------------

    def record_block(
        self,
        *,
        context: Sequence[Cell | str],
        executed: Cell | str,
        generated: Cell | str | None = None,
        exit_code: int | None = 0,
        gen_trace_id: str | None = None,
        exec_trace_ids: Sequence[str] = (),
        executed_at: datetime.datetime | None = None,
        language: str = "bash",
        namespace: str | None = None,
        retrieved: Retrieved = (),
    ) -> Recorded:
        """Record what happened to one suggestion as a Block, named from its trace id, so recording
        the same event again is the same Block: created once, updated only when it differs.
        `retrieved` is what the assistant was shown (what `search` returned and `few_shot_messages`
        put into the prompt): the controller tells from it whether the right answer was among it."""
        namespace = namespace or self.namespace
        body = build_block(
            context=context,
            executed=executed,
            generated=generated,
            exit_code=exit_code,
            gen_trace_id=gen_trace_id,
            exec_trace_ids=exec_trace_ids,
            executed_at=executed_at,
            language=language,
            retrieved=retrieved,
            namespace=namespace,
        )
        return self._apply(namespace, body)

    def _apply(self, namespace: str, body: dict[str, Any]) -> Recorded:
        """Create, or compare and update with the current resourceVersion as a precondition."""
        api = CustomObjectsApi(self._kube_client())
        name = body["metadata"]["name"]
        try:
            api.create_namespaced_custom_object(GROUP, VERSION, namespace, BLOCKS, body)
            return Recorded(namespace, name, "created")
        except ApiException as exc:
            if exc.status != 409:
                raise
        for _ in range(_CONFLICT_RETRIES):
            current = cast(
                dict[str, Any], api.get_namespaced_custom_object(GROUP, VERSION, namespace, BLOCKS, name)
            )
            if current.get("spec") == body["spec"]:
                return Recorded(namespace, name, "unchanged")
            current["spec"] = body["spec"]
            annotations = current["metadata"].setdefault("annotations", {})
            annotations.update(body["metadata"]["annotations"])
            try:
                api.replace_namespaced_custom_object(GROUP, VERSION, namespace, BLOCKS, name, current)
                return Recorded(namespace, name, "updated")
            except ApiException as exc:
                if exc.status != 409:  # 409 here: changed since our read; read again
                    raise
        raise BlocklearnError(409, f"Block {namespace}/{name} kept changing; not updated")

    def _kube_client(self) -> Any:
        if self._kube is None:
            self._kube = api_client(self._kubeconfig)
        return self._kube

    # -- lifetime --------------------------------------------------------------------------------

    def close(self) -> None:
        self._session.close()
        if self._kube is not None:
            self._kube.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def block_name(trace_id: str) -> str:
    """A valid, deterministic object name for a trace id: a readable prefix and a hash of all of it,
    so two trace ids never share a name, and the same one always gives the same name."""
    if not trace_id:
        raise ValueError("a trace id is needed to name the Block")
    # At most 53 characters: an Example label holds its Block's name, and labels stop at 63.
    return hashed_name(trace_id, trace_id, length=53, hash_chars=12, fallback="trace")


def build_block(
    *,
    context: Sequence[Cell | str],
    executed: Cell | str,
    generated: Cell | str | None = None,
    exit_code: int | None = 0,
    gen_trace_id: str | None = None,
    exec_trace_ids: Sequence[str] = (),
    executed_at: datetime.datetime | None = None,
    language: str = "bash",
    retrieved: Retrieved = (),
    namespace: str | None = None,
) -> dict[str, Any]:
    """A Block, validated by the same model the controller validates with. A str context cell is
    markup; a str generated or executed cell is code in `language`. Named from the generation's
    trace id (or the first execution's, for a cell written without a suggestion). `retrieved`: see
    `retrieved_names`."""
    trace = gen_trace_id or next(iter(exec_trace_ids), None)
    if not trace:
        raise ValueError("give gen_trace_id or exec_trace_ids: the Block is named from its trace id")
    if executed_at is not None and executed_at.tzinfo is None:
        raise ValueError("executed_at needs a time zone (RFC 3339)")
    spec = BlockSpec(
        doc=Doc(cells=[_markup(c) for c in context]),
        generated_cell=None if generated is None else _code(generated, language),
        executed_cell=_code(executed, language),
        exit_code=exit_code,
        executed_at=executed_at,
        gen_trace_id=gen_trace_id,
        exec_trace_ids=list(exec_trace_ids),
        retrieved_examples=retrieved_names(retrieved, namespace),
    )
    return {
        "apiVersion": API_VERSION,
        "kind": "Block",
        "metadata": {"name": block_name(trace), "annotations": {TRACE_ANNOTATION: trace}},
        # JSON mode, as the API server would store it: executedAt as an RFC 3339 string.
        "spec": json.loads(spec.model_dump_json(by_alias=True, exclude_none=True)),
    }


def retrieved_names(retrieved: Retrieved, namespace: str | None = None) -> list[str]:
    """The names of the Examples shown, in rank order, once each, at most 10 (the best): what a
    Block records. Results from another namespace than `namespace` (a cross-namespace search) are
    left out: a Block names Examples of its own namespace."""
    if isinstance(retrieved, str):
        raise TypeError("retrieved takes a search's answer, its results or a list of names, not one name")
    items = retrieved.results if isinstance(retrieved, SearchResponse) else retrieved
    names: list[str] = []
    for item in items:
        if isinstance(item, SearchResult):
            if namespace is not None and item.namespace != namespace:
                continue
            item = item.name
        if item not in names:
            names.append(item)
    return names[:MAX_RETRIEVED]


def few_shot_messages(
    results: SearchResponse | Iterable[SearchResult],
) -> list[dict[str, str]]:
    """Examples as chat messages, a user turn (the context, rendered as it was embedded) and an
    assistant turn (the executed cells) each, best example last, nearest to the new request, as
    Foyle orders them. Put them before the request in the prompt."""
    items = results.results if isinstance(results, SearchResponse) else list(results)
    messages: list[dict[str, str]] = []
    for result in reversed(items):
        messages.append({"role": "user", "content": result.query})
        messages.append({"role": "assistant", "content": "\n\n".join(render_cell(c) for c in result.answer)})
    return messages


def _markup(cell: Cell | str) -> Cell:
    return Cell(kind="markup", contents=cell) if isinstance(cell, str) else cell


def _code(cell: Cell | str, language: str) -> Cell:
    return Cell(kind="code", language=language, contents=cell) if isinstance(cell, str) else cell
