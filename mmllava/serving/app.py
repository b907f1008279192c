"""The HTTP app: OpenAI's ``/v1/chat/completions`` and ``/v1/models`` for
one model, ``/health``, ``/metrics`` and the chat page at ``/``."""
import asyncio
import contextlib
import hmac
import json
import logging
import time
from dataclasses import dataclass
from importlib import resources
from typing import Optional

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import (HTMLResponse, JSONResponse, PlainTextResponse,
                                 Response, StreamingResponse)
from starlette.routing import Route

from mmllava.serving.batcher import DynamicBatcher, QueueFull
from mmllava.serving.continuous import ContinuousBatcher
from mmllava.serving.engine import GenerationEngine, GenerationJob
from mmllava.serving.errors import APIError, error_body
from mmllava.serving.events import AsyncJobEvents, cancel_all, choice_events
from mmllava.serving.images import describe, load_image
from mmllava.serving.limits import max_tokens_for, sampling_for
from mmllava.serving.messages import to_conversation
from mmllava.serving.metrics import ServerMetrics
from mmllava.serving.responses import (choice_logprobs, chunk_body,
                                       completion_body, new_completion_id,
                                       now, sse, usage)
from mmllava.serving.schema import ChatCompletionRequest, parse_chat_request
from mmllava.serving.streaming import RowResult

logger = logging.getLogger(__name__)
#: One line per request: method, path, status, latency, tokens; never the
#: key or the body.
access_logger = logging.getLogger('mmllava.serving.access')

#: Hosts a server bound to this machine answers to.
LOCAL_HOSTS = ('127.0.0.1', 'localhost', '::1')
COMPLETIONS_PATH = '/v1/chat/completions'
#: The page's icon (also at /favicon.ico, where browsers look for one).
FAVICON_SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32">'
    '<rect width="32" height="32" rx="7" fill="#2b5fd9"/>'
    '<circle cx="16" cy="16" r="7" fill="none" stroke="#fff" '
    'stroke-width="3"/><circle cx="16" cy="16" r="2.5" fill="#fff"/></svg>')


@dataclass
class ServerSettings:
    """What the server serves and what it accepts.

    Args:
        model_name (str): The model id clients name in requests.
        api_key (str, optional): When set, requests to ``/v1`` and
            ``/metrics`` need ``Authorization: Bearer <api_key>``.
        batching (str): ``'continuous'`` (a request joins the running batch
            at the next decoding step; see :mod:`mmllava.serving.continuous`)
            or ``'static'`` (requests that arrive together run as one batch
            to its end). Defaults to ``'continuous'``.
        max_batch_size (int): Most requests generated together.
            Defaults to 8.
        queue_size (int): Most requests waiting for the model; more get
            503. Defaults to 64.
        gather_window_s (float): How long a static batch waits for more
            requests after its first. Defaults to 0.02.
        max_tokens_cap (int): Most tokens one request may generate.
            Defaults to 512.
        max_image_pixels (int): Most pixels (width x height) of an image,
            and of the square a pad-to-square pipeline makes of it.
            Defaults to 25,000,000.
        max_image_side (int): Most pixels of an image's longer side.
            Defaults to 10,000.
        max_body_bytes (int): Largest request body (and remote image).
            Defaults to 20 MiB.
        allow_remote_images (bool): Fetch http(s) image URLs. Defaults to
            False (base64 data URLs only).
        max_in_flight (int, optional): Most chat requests being read,
            decoded, queued or generated at once; more get 503 before
            their body is read. Defaults to ``queue_size + max_batch_size``.
        image_workers (int): Most requests decoding and preprocessing
            their images at once (each holds decoded pixels); the others
            wait their turn. Defaults to 2.
        max_n (int): Most choices (``n``) of one request. Defaults to 8.
        max_images (int): Most images in one conversation. Defaults to
            4.
        body_timeout_s (float): Most seconds to receive a request body;
            slower bodies get 408. Defaults to 30.
        allowed_hosts (tuple[str], optional): ``Host`` header values the
            server answers (without port); ``('*',)`` answers any. Defaults
            to this machine's names (``127.0.0.1``, ``localhost``,
            ``::1``), so a web page cannot reach the server through a name
            it controls (DNS rebinding).
    """

    model_name: str
    api_key: Optional[str] = None
    batching: str = 'continuous'
    max_batch_size: int = 8
    queue_size: int = 64
    gather_window_s: float = 0.02
    max_tokens_cap: int = 512
    max_image_pixels: int = 25_000_000
    max_image_side: int = 10_000
    max_body_bytes: int = 20 * 1024 * 1024
    allow_remote_images: bool = False
    max_in_flight: Optional[int] = None
    image_workers: int = 2
    max_n: int = 8
    max_images: int = 4
    body_timeout_s: float = 30.0
    allowed_hosts: tuple = LOCAL_HOSTS

    def __post_init__(self) -> None:
        if self.batching not in ('continuous', 'static'):
            raise ValueError("batching must be 'continuous' or 'static'; "
                             f'got {self.batching!r}.')
        if self.max_in_flight is None:
            self.max_in_flight = self.queue_size + self.max_batch_size
        for name in ('max_in_flight', 'image_workers', 'max_n',
                     'max_images'):
            if getattr(self, name) < 1:
                raise ValueError(f'{name} must be >= 1; got '
                                 f'{getattr(self, name)}.')
        self.allowed_hosts = tuple(self.allowed_hosts)


def check_api_key(request: Request, api_key: Optional[str]) -> None:
    if api_key is None:
        return
    header = request.headers.get('authorization', '')
    scheme, _, given = header.partition(' ')
    # compare_digest: the time taken does not reveal how much matched.
    if scheme.lower() != 'bearer' or not hmac.compare_digest(
            given.strip().encode(), api_key.encode()):
        raise APIError(401, 'Missing or wrong API key; send '
                       '"Authorization: Bearer <key>".',
                       code='invalid_api_key')


def check_json_content_type(request: Request) -> None:
    """Refuse (415) a body not declared JSON: browsers send text/plain and
    form bodies from any web page without asking the server first."""
    media_type = request.headers.get('content-type', '').split(';')[0]
    if media_type.strip().lower() != 'application/json':
        raise APIError(415, 'The body must be sent as "Content-Type: '
                       f'application/json"; got {media_type or "none"!r}.',
                       code='unsupported_media_type')


async def read_body(request: Request, max_bytes: int,
                    timeout_s: float = 30.0) -> bytes:
    """The body, refused (413) once it passes ``max_bytes`` and (408) when
    it takes longer than ``timeout_s``."""
    too_large = APIError(413, f'The request body is larger than {max_bytes} '
                         'bytes.', code='request_too_large')
    length = request.headers.get('content-length', '')
    if length.isdigit() and int(length) > max_bytes:
        raise too_large
    body = bytearray()
    try:
        async with asyncio.timeout(timeout_s):
            async for chunk in request.stream():
                body += chunk
                if len(body) > max_bytes:
                    raise too_large
    except TimeoutError:
        raise APIError(408, f'The request body took longer than {timeout_s} '
                       's to arrive.', code='request_timeout') from None
    except ClientDisconnect:
        logger.info('Client %s left while sending its request body.',
                    client_address(request.scope))
        raise APIError(400, 'The client disconnected.',
                       code='client_disconnected') from None
    return bytes(body)


def client_address(scope: dict) -> str:
    client = scope.get('client')
    return f'{client[0]}:{client[1]}' if client else '-'


class ChatServer:
    """The routes, around a :class:`GenerationEngine` and a
    :class:`DynamicBatcher`.

    Args:
        model (LLaVA): Built by :func:`mmllava.apis.get_model`.
        settings (ServerSettings): Names and limits.
    """

    def __init__(self, model, settings: ServerSettings) -> None:
        self.model = model
        self.settings = settings
        self.engine = GenerationEngine(model)
        if settings.batching == 'continuous':
            self.batcher = ContinuousBatcher(
                model, max_batch_size=settings.max_batch_size,
                queue_size=settings.queue_size)
        else:
            self.batcher = DynamicBatcher(
                self.engine.run_batch,
                batch_key=lambda job: job.sampling,
                max_batch_size=settings.max_batch_size,
                queue_size=settings.queue_size,
                gather_window_s=settings.gather_window_s)
        self.metrics = ServerMetrics(self.batcher.stats)
        self.created = now()
        self._preparing: Optional[asyncio.Semaphore] = None

    def model_card(self) -> dict:
        return {'id': self.settings.model_name, 'object': 'model',
                'created': self.created, 'owned_by': 'mmllava'}

    async def index(self, request: Request) -> Response:
        page = resources.files('mmllava.serving').joinpath(
            'static/chat.html').read_text(encoding='utf-8')
        return HTMLResponse(page)

    async def favicon(self, request: Request) -> Response:
        return Response(FAVICON_SVG, media_type='image/svg+xml',
                        headers={'Cache-Control': 'max-age=86400'})

    async def health(self, request: Request) -> Response:
        if not self.batcher.running():
            return JSONResponse({'status': 'unavailable'}, status_code=503)
        return JSONResponse({'status': 'ok'})

    async def metrics_text(self, request: Request) -> Response:
        check_api_key(request, self.settings.api_key)
        return PlainTextResponse(self.metrics.text(),
                                 media_type='text/plain; version=0.0.4')

    async def list_models(self, request: Request) -> Response:
        check_api_key(request, self.settings.api_key)
        return JSONResponse({'object': 'list', 'data': [self.model_card()]})

    async def get_model(self, request: Request) -> Response:
        check_api_key(request, self.settings.api_key)
        self.check_model_name(request.path_params['model'], 'model')
        return JSONResponse(self.model_card())

    def check_model_name(self, name: str, param: str) -> None:
        if name != self.settings.model_name:
            raise APIError(404, f'The model {name!r} does not exist; this '
                           f'server serves {self.settings.model_name!r}.',
                           param=param, code='model_not_found')

    async def chat_completions(self, request: Request) -> Response:
        settings = self.settings
        start = time.monotonic()
        check_api_key(request, settings.api_key)
        check_json_content_type(request)
        chat = parse_chat_request(await read_body(
            request, settings.max_body_bytes, settings.body_timeout_s))
        self.check_model_name(chat.model, 'model')
        if chat.n > settings.max_n:
            raise APIError(400, f'n is {chat.n}; this server generates at '
                           f'most {settings.max_n} choices per request.',
                           param='n', code='invalid_value')
        completion_id, created = new_completion_id(), now()
        jobs = await self.make_jobs(chat, completion_id)
        submitted = []
        try:
            for job in jobs:
                self.batcher.submit(job)
                submitted.append(job)
        except QueueFull:
            cancel_all([job.events for job in submitted])
            raise APIError(
                503, 'The server is busy: too many requests are waiting. '
                'Retry later.', code='server_overloaded',
                headers={'Retry-After': str(self.batcher.retry_after_s())}
            ) from None
        if chat.stream:
            include_usage = bool(chat.stream_options
                                 and chat.stream_options.include_usage)
            return StreamingResponse(
                self.stream(request, jobs, completion_id, created,
                            include_usage, start),
                media_type='text/event-stream',
                headers={'Cache-Control': 'no-cache'})
        watcher = asyncio.create_task(self.cancel_on_disconnect(request,
                                                                jobs))
        results: dict = {}
        try:
            async for index, event in self.events(jobs, start):
                if isinstance(event, Exception):
                    raise event
                if isinstance(event, RowResult):
                    results[index] = event
        finally:
            watcher.cancel()
        results = [results[index] for index in range(len(jobs))]
        self.count_tokens(request, jobs, results)
        return JSONResponse(completion_body(
            completion_id, settings.model_name, created, results,
            jobs[0].prompt_tokens))

    async def cancel_on_disconnect(self, request: Request,
                                   jobs: list[GenerationJob]) -> None:
        """Cancel the jobs once the client is gone (the body has been
        read, so the next message is the disconnect)."""
        while True:
            message = await request.receive()
            if message['type'] == 'http.disconnect':
                cancel_all([job.events for job in jobs])
                return

    async def events(self, jobs: list[GenerationJob], start: float):
        """The jobs' ``(index, event)``; the first text is timed."""
        first = True
        async for index, event in choice_events(jobs[0].events.queue,
                                                len(jobs)):
            if first and isinstance(event, str):
                first = False
                self.metrics.first_token_after(time.monotonic() - start)
            yield index, event

    def count_tokens(self, request: Request, jobs: list[GenerationJob],
                     results: list[RowResult]) -> None:
        completion = sum(result.completion_tokens for result in results)
        request.state.usage = (jobs[0].prompt_tokens, completion)
        self.metrics.tokens(jobs[0].prompt_tokens, completion, any(
            result.finish_reason == 'cancelled' for result in results))

    def preparing(self) -> asyncio.Semaphore:
        if self._preparing is None:
            self._preparing = asyncio.Semaphore(self.settings.image_workers)
        return self._preparing

    async def make_jobs(self, chat: ChatCompletionRequest,
                        completion_id: str) -> list[GenerationJob]:
        """Validate the conversation, decode its image and run the
        ``test_pipeline``; one job per choice; errors are 4xx."""
        settings, engine = self.settings, self.engine
        conversation = to_conversation(chat.messages, settings.max_images)
        async with self.preparing():
            images = [await load_image(
                url, param, settings.max_image_pixels,
                settings.max_body_bytes, settings.allow_remote_images,
                settings.max_image_side, engine.pads_to_square)
                for url, param in zip(conversation.image_urls,
                                      conversation.image_params)]
            try:
                sample = await asyncio.to_thread(
                    engine.prepare, conversation.turns, images,
                    completion_id, conversation.system)
            except ValueError as error:
                raise APIError(400, 'The model\'s chat template cannot take '
                               f'this conversation: {describe(error)}',
                               param='messages',
                               code='invalid_conversation') from None
            del images
        prompt_tokens = engine.prompt_tokens(sample)
        generation_cfg = self.model.generation_cfg
        max_tokens = max_tokens_for(chat, generation_cfg,
                                    settings.max_tokens_cap, prompt_tokens,
                                    engine.context_length)
        if chat.min_tokens > max_tokens:
            raise APIError(400, f'min_tokens is {chat.min_tokens}, more '
                           f'than the {max_tokens} tokens this request may '
                           'generate.', param='min_tokens',
                           code='invalid_value')
        sampling = sampling_for(chat, generation_cfg, completion_id)
        queue: asyncio.Queue = asyncio.Queue()
        loop = asyncio.get_running_loop()
        top_logprobs = (chat.top_logprobs or 0) if chat.logprobs else None
        return [GenerationJob(
            sample=sample, prompt_tokens=prompt_tokens, max_tokens=max_tokens,
            events=AsyncJobEvents(loop, queue, index), sampling=sampling,
            stops=chat.stops, top_logprobs=top_logprobs)
            for index in range(chat.n)]

    async def stream(self, request: Request, jobs: list[GenerationJob],
                     completion_id: str, created: int, include_usage: bool,
                     start: float):
        """The jobs' ``chat.completion.chunk`` events, then ``[DONE]``.

        With ``logprobs``, a choice's token log probabilities come in its
        finishing chunk (clients join the chunks' lists)."""
        name = self.settings.model_name

        def chunk(index: int, delta: dict,
                  finish_reason: Optional[str] = None,
                  logprobs: Optional[dict] = None) -> str:
            return sse(chunk_body(completion_id, name, created, delta,
                                  finish_reason, index=index,
                                  logprobs=logprobs))

        results = []
        try:
            for index in range(len(jobs)):
                yield chunk(index, {'role': 'assistant', 'content': ''})
            async for index, event in self.events(jobs, start):
                if isinstance(event, str):
                    yield chunk(index, {'content': event})
                elif isinstance(event, RowResult):
                    results.append(event)
                    yield chunk(index, {}, event.finish_reason,
                                choice_logprobs(event))
                else:
                    log_failure(event)
                    yield sse(error_body(500, 'Generation failed.'))
            if include_usage:
                yield sse(chunk_body(
                    completion_id, name, created, {},
                    usage_counts=usage(jobs[0].prompt_tokens, sum(
                        result.completion_tokens for result in results))))
            yield sse('[DONE]')
        finally:
            # A client that left ends its rows early; after the end this
            # changes nothing.
            cancel_all([job.events for job in jobs])
            self.count_tokens(request, jobs, results)


def log_failure(error: BaseException) -> None:
    logger.error('Request failed: %s: %s', type(error).__name__,
                 describe(error))


async def api_error(request: Request, error: APIError) -> Response:
    return JSONResponse(error.body(), status_code=error.status,
                        headers=error.headers)


async def http_error(request: Request, error: HTTPException) -> Response:
    return JSONResponse(error_body(error.status_code, error.detail),
                        status_code=error.status_code,
                        headers=error.headers)


async def server_error(request: Request, error: Exception) -> Response:
    log_failure(error)
    return JSONResponse(error_body(500, 'Internal server error.'),
                        status_code=500)


class GuardMiddleware:
    """Around every request: the ``Host`` check, the cap on chat requests
    in flight (503 before their body is read), the metrics and the access
    log line.

    Args:
        app: The ASGI app.
        server (ChatServer): Its settings and metrics.
    """

    def __init__(self, app, server: ChatServer) -> None:
        self.app = app
        self.server = server

    async def __call__(self, scope, receive, send) -> None:
        if scope['type'] != 'http':
            return await self.app(scope, receive, send)
        settings, metrics = self.server.settings, self.server.metrics
        start = time.monotonic()
        status = {'code': 500}

        async def send_and_watch(message) -> None:
            if message['type'] == 'http.response.start':
                status['code'] = message['status']
            await send(message)

        limited = scope['path'] == COMPLETIONS_PATH
        # The handler records the request's token counts here.
        scope.setdefault('state', {})
        try:
            host = host_of(scope)
            if '*' not in settings.allowed_hosts and \
                    host not in settings.allowed_hosts:
                return await reply(send_and_watch, APIError(
                    400, f'This server does not answer to the host '
                    f'{host!r}; it answers to '
                    f'{", ".join(settings.allowed_hosts)} (see --allow-host).',
                    code='invalid_host'))
            if limited:
                if metrics.in_flight >= settings.max_in_flight:
                    return await reply(send_and_watch, APIError(
                        503, 'The server is busy: too many requests are in '
                        'flight. Retry later.', code='server_overloaded',
                        headers={'Retry-After': str(
                            self.server.batcher.retry_after_s())}))
                metrics.in_flight += 1
            try:
                await self.app(scope, receive, send_and_watch)
            finally:
                if limited:
                    metrics.in_flight -= 1
        finally:
            latency = time.monotonic() - start
            metrics.request_done(status['code'], latency)
            prompt, completion = scope.get('state', {}).get('usage',
                                                            ('-', '-'))
            access_logger.info(
                '%s "%s %s" %d %.3fs prompt_tokens=%s completion_tokens=%s',
                client_address(scope), scope['method'], scope['path'],
                status['code'], latency, prompt, completion)


def host_of(scope: dict) -> str:
    """The ``Host`` header's name, without port or IPv6 brackets."""
    for name, value in scope.get('headers', ()):
        if name == b'host':
            host = value.decode('latin-1').strip().lower()
            if host.startswith('['):
                return host[1:host.find(']')] if ']' in host else host
            return host.rsplit(':', 1)[0] if host.count(':') == 1 else host
    return ''


async def reply(send, error: APIError) -> None:
    body = json.dumps(error.body()).encode()
    headers = [(b'content-type', b'application/json'),
               (b'content-length', str(len(body)).encode())]
    headers += [(name.lower().encode(), str(value).encode())
                for name, value in error.headers.items()]
    await send({'type': 'http.response.start', 'status': error.status,
                'headers': headers})
    await send({'type': 'http.response.body', 'body': body})


def build_app(model, settings: ServerSettings) -> Starlette:
    """The Starlette app serving ``model``; ``app.state.server`` is its
    :class:`ChatServer` (the batcher's ``stats()`` and the metrics are
    there).

    The batching worker runs between the app's startup and shutdown.
    """
    server = ChatServer(model, settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        server.batcher.start()
        try:
            yield
        finally:
            await asyncio.to_thread(server.batcher.stop)

    app = Starlette(
        routes=[
            Route('/', server.index, methods=['GET']),
            Route('/favicon.ico', server.favicon, methods=['GET']),
            Route('/favicon.svg', server.favicon, methods=['GET']),
            Route('/health', server.health, methods=['GET']),
            Route('/metrics', server.metrics_text, methods=['GET']),
            Route('/v1/models', server.list_models, methods=['GET']),
            Route('/v1/models/{model:path}', server.get_model,
                  methods=['GET']),
            Route(COMPLETIONS_PATH, server.chat_completions,
                  methods=['POST']),
        ],
        exception_handlers={APIError: api_error, HTTPException: http_error,
                            Exception: server_error},
        lifespan=lifespan)
    app.add_middleware(GuardMiddleware, server=server)
    app.state.server = server
    return app
