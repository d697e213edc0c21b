"""holefill's language server (pygls 2): the whole LSP surface. Handlers are thin and async; they
delegate to features.py (completion, loading, configuration), engine_host.py (the model on its own
thread) and documents.py (positions)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from lsprotocol import types
from pygls.exceptions import FeatureRequestError, JsonRpcException
from pygls.lsp.server import LanguageServer
from pygls.protocol import LanguageServerProtocol
from pygls.protocol.language_server import lsp_method

from holefill import __version__
from holefill.config import Settings
from holefill.lsp_server import answers, api_hooks, chatlsp, features, logs, merge_hooks, transport
from holefill.lsp_server.documents import apply_changes, open_document
from holefill.lsp_server.engine_host import EngineFactory, EngineHost, default_engine_factory


class HolefillProtocol(LanguageServerProtocol):
    """pygls' protocol, plus: every message passes answers.admit first (every request gets an
    answer, malformed ones an error); the `formattingOptions` a client may send with an inline
    completion request (lsprotocol's type would drop them) are kept by request id; didChange
    edits are applied with documents.apply_changes and handed to the engine's cache as well."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.initialize_seen = False

    @lsp_method(types.TEXT_DOCUMENT_DID_CHANGE)
    def lsp_text_document__did_change(self, params: types.DidChangeTextDocumentParams) -> Any:
        doc = open_document(self.workspace, params.text_document.uri)
        if doc is None:
            features.log.warning("didChange for a document that is not open: ignored")
            return
        text, edits = apply_changes(
            doc.source, params.content_changes, self.workspace.position_encoding
        )
        features.cache_edits(self._server, doc.uri, edits)  # type: ignore[arg-type]
        whole = types.TextDocumentContentChangeWholeDocument(text=text)
        self.workspace.update_text_document(params.text_document, whole)
        if (handler := self.fm.features.get(types.TEXT_DOCUMENT_DID_CHANGE)) is not None:
            yield handler, (params,), None

    def structure_message(self, data: dict[str, Any]) -> Any:
        # json.loads' object hook, called on nested objects too: handle_message structures
        # the whole message once (answers.py).
        return data

    def structure_response(self, data: dict[str, Any]) -> Any:
        return super().structure_message(data)

    def handle_message(self, message: Any) -> None:
        structured = answers.admit(self, message, self.initialize_seen)
        if structured is None:
            return
        method = message.get("method")
        if method == types.INITIALIZE:
            self.initialize_seen = True
        if method == types.TEXT_DOCUMENT_INLINE_COMPLETION and "id" in message:
            options = message["params"].get("formattingOptions")  # params: an object by now
            if isinstance(options, dict):
                kept = self._server.formatting  # type: ignore[attr-defined]
                kept[message["id"]] = options
                if len(kept) > 64:  # requests cancelled before their handler ran
                    del kept[next(iter(kept))]
        super().handle_message(structured)


class HolefillServer(LanguageServer):
    def __init__(self, settings: Settings, engine_factory: EngineFactory) -> None:
        super().__init__(
            "holefill", __version__, protocol_cls=HolefillProtocol,
            converter_factory=answers.converter,
        )  # fmt: skip
        self.settings = settings
        self.host = EngineHost(engine_factory)
        self.host.notify = self.show_notice  # e.g. the openai backend's endpoint down / back
        self.jedi_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="holefill-jedi")
        self.formatting: dict[Any, dict[str, Any]] = {}
        self.background: set[Any] = set()
        self.ngrams: Any = None  # completion.ngram.NgramTable of the workspace (features)
        self.api_index: Any = None  # context.index.ApiIndex, built at `initialized` (api_hooks)
        self.api_build: Any = None  # the task building it
        self.is_initialized = False

    @property
    def inline_client(self) -> bool:
        return (
            getattr(self.client_capabilities.text_document, "inline_completion", None) is not None
        )

    @property
    def model_name(self) -> str:
        return str(getattr(getattr(self.host.engine, "info", None), "name", self.settings.model))

    @property
    def root_path(self) -> str | None:
        try:
            return self.workspace.root_path
        except RuntimeError:  # not initialized yet
            return None

    def take_formatting(self) -> dict[str, Any] | None:
        return self.formatting.pop(self.protocol.msg_id, None)

    def show_notice(self, message: str, error: bool) -> None:
        kind = types.MessageType.Error if error else types.MessageType.Info
        self.window_show_message(types.ShowMessageParams(type=kind, message=message))

    def feature(self, feature_name: str, options: Any = None) -> Any:
        """pygls' registration, with each handler inside answers.guarded (its failures logged
        without source text; a request's answered with InternalError)."""
        register = super().feature(feature_name, options)
        return lambda handler: register(answers.guarded(feature_name, handler))

    def report_server_error(self, error: Exception, source: Any) -> None:
        """Errors outside a request are logged, never shown (no message storms). A message body
        that is not JSON gets its ParseError answer here (pygls' read loop reports it)."""
        if answers.unreadable(self.protocol, error):
            return
        if isinstance(error, JsonRpcException) and source is FeatureRequestError:
            return  # answered with this error; pygls logged it, and answers.guarded the cause
        features.log.error("internal error (%s): %s", source.__name__, type(error).__name__)

    def shutdown(self) -> None:
        self.host.close()
        self.jedi_executor.shutdown(wait=False, cancel_futures=True)
        super().shutdown()


def create_server(
    settings: Settings, engine_factory: EngineFactory = default_engine_factory
) -> HolefillServer:
    server = HolefillServer(settings, engine_factory)

    @server.feature(types.INITIALIZE)
    async def initialize(ls: HolefillServer, params: types.InitializeParams) -> None:
        features.initialization_options(ls, params.initialization_options)

    @server.feature(types.INITIALIZED)
    async def initialized(ls: HolefillServer, params: types.InitializedParams) -> None:
        ls.is_initialized = True
        logs.attach_client_logs(ls)
        features.start_loading(ls)
        api_hooks.start_index(ls)  # workspace API index (LANCE), with work-done progress

    @server.feature(
        types.TEXT_DOCUMENT_INLINE_COMPLETION,
        types.InlineCompletionOptions(work_done_progress=False),
    )
    async def inline_completion(
        ls: HolefillServer, params: types.InlineCompletionParams
    ) -> types.InlineCompletionList:
        return await features.inline_completion(ls, params, ls.take_formatting())

    @server.feature(
        types.TEXT_DOCUMENT_COMPLETION, types.CompletionOptions(trigger_characters=["."])
    )
    async def completion(
        ls: HolefillServer, params: types.CompletionParams
    ) -> types.CompletionList:
        return await features.completion(ls, params)

    @server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
    async def did_change_configuration(
        ls: HolefillServer, params: types.DidChangeConfigurationParams
    ) -> None:
        await features.change_configuration(ls, params.settings)

    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    async def did_open(ls: HolefillServer, params: types.DidOpenTextDocumentParams) -> None:
        merge_hooks.publish_diagnostics(ls, params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    async def did_change(ls: HolefillServer, params: types.DidChangeTextDocumentParams) -> None:
        merge_hooks.publish_diagnostics(ls, params.text_document.uri)
        api_hooks.document_changed(ls, params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_SAVE)
    async def did_save(ls: HolefillServer, params: types.DidSaveTextDocumentParams) -> None:
        api_hooks.document_changed(ls, params.text_document.uri, now=True)
        features.ngram_saved(ls, params.text_document.uri)

    @server.feature(types.WORKSPACE_DID_CHANGE_WATCHED_FILES)
    async def did_change_watched_files(
        ls: HolefillServer, params: types.DidChangeWatchedFilesParams
    ) -> None:
        api_hooks.watched_files_changed(ls, params)

    @server.feature(api_hooks.SEARCH_API)  # params: a query string; ranked workspace APIs
    async def search_api(ls: HolefillServer, params: Any) -> list[dict[str, Any]]:
        return await api_hooks.search_api(ls, params)

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    async def did_close(ls: HolefillServer, params: types.DidCloseTextDocumentParams) -> None:
        ls.host.forget(params.text_document.uri)
        merge_hooks.clear_diagnostics(ls, params.text_document.uri)

    @server.feature(types.SHUTDOWN)
    async def shutdown(ls: HolefillServer, params: None) -> None:
        ls.host.cancel_all()

    for method in chatlsp.METHODS:  # typed-hole context (params: TextDocumentPositionParams)
        server.feature(method)(chatlsp.handler(method))

    merge_hooks.register(server)  # merge-conflict diagnostics and code actions, when available
    return server


def run_server(settings: Settings, tcp: str | None = None) -> None:
    """Serve LSP on stdio, or on TCP at "HOST:PORT" / "PORT" (host 127.0.0.1 unless given)."""
    logs.setup_logging(settings)
    address = transport.parse_tcp(tcp) if tcp is not None else None
    server = create_server(settings)
    if address is None:
        transport.serve_stdio(server)
    else:
        transport.serve_tcp(server, *address)
