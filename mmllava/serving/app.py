"""The HTTP app: OpenAI's ``/v1/chat/completions`` and ``/v1/models`` for
one model, and the chat page at ``/``."""
import asyncio
import contextlib
import hmac
import logging
from dataclasses import dataclass
from importlib import resources
from typing import Optional

from mmengine.logging import print_log
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import (HTMLResponse, JSONResponse, Response,
                                 StreamingResponse)
from starlette.routing import Route

from mmllava.serving.batcher import DynamicBatcher, QueueFull
from mmllava.serving.engine import GenerationEngine, GenerationJob
from mmllava.serving.errors import APIError, error_body
from mmllava.serving.events import AsyncJobEvents
from mmllava.serving.images import load_image
from mmllava.serving.limits import max_tokens_for, sampling_for
from mmllava.serving.messages import to_conversation
from mmllava.serving.responses import (chunk_body, completion_body,
                                       new_completion_id, now, sse, usage)
from mmllava.serving.schema import ChatCompletionRequest, parse_chat_request
from mmllava.serving.streaming import RowResult


@dataclass
class ServerSettings:
    """What the server serves and what it accepts.

    Args:
        model_name (str): The model id clients name in requests.
        api_key (str, optional): When set, requests to ``/v1`` need
            ``Authorization: Bearer <api_key>``.
        max_batch_size (int): Most requests generated together.
            Defaults to 8.
        queue_size (int): Most requests waiting for the model; more get
            503. Defaults to 64.
        gather_window_s (float): How long a batch waits for more requests
            after its first. Defaults to 0.02.
        max_tokens_cap (int): Most tokens one request may generate.
            Defaults to 512.
        max_image_pixels (int): Most pixels (width x height) of an image.
            Defaults to 25,000,000.
        max_body_bytes (int): Largest request body (and remote image).
            Defaults to 20 MiB.
        allow_remote_images (bool): Fetch http(s) image URLs. Defaults to
            False (base64 data URLs only).
    """

    model_name: str
    api_key: Optional[str] = None
    max_batch_size: int = 8
    queue_size: int = 64
    gather_window_s: float = 0.02
    max_tokens_cap: int = 512
    max_image_pixels: int = 25_000_000
    max_body_bytes: int = 20 * 1024 * 1024
    allow_remote_images: bool = False


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


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The body, refused (413) once it passes ``max_bytes``."""
    too_large = APIError(413, f'The request body is larger than {max_bytes} '
                         'bytes.', code='request_too_large')
    length = request.headers.get('content-length', '')
    if length.isdigit() and int(length) > max_bytes:
        raise too_large
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise too_large
    return bytes(body)


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
        self.batcher = DynamicBatcher(
            self.engine.run_batch, batch_key=lambda job: job.sampling,
            max_batch_size=settings.max_batch_size,
            queue_size=settings.queue_size,
            gather_window_s=settings.gather_window_s)
        self.created = now()

    def model_card(self) -> dict:
        return {'id': self.settings.model_name, 'object': 'model',
                'created': self.created, 'owned_by': 'mmllava'}

    async def index(self, request: Request) -> Response:
        page = resources.files('mmllava.serving').joinpath(
            'static/chat.html').read_text(encoding='utf-8')
        return HTMLResponse(page)

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
        check_api_key(request, settings.api_key)
        chat = parse_chat_request(
            await read_body(request, settings.max_body_bytes))
        self.check_model_name(chat.model, 'model')
        completion_id, created = new_completion_id(), now()
        job = await self.make_job(chat, completion_id)
        try:
            self.batcher.submit(job)
        except QueueFull:
            raise APIError(
                503, 'The server is busy: too many requests are waiting. '
                'Retry later.', code='server_overloaded',
                headers={'Retry-After': str(self.batcher.retry_after_s())}
            ) from None
        if chat.stream:
            include_usage = bool(chat.stream_options
                                 and chat.stream_options.include_usage)
            return StreamingResponse(
                self.stream(job, completion_id, created, include_usage),
                media_type='text/event-stream',
                headers={'Cache-Control': 'no-cache'})
        async for event in job.events:
            if isinstance(event, Exception):
                raise event
            result = event
        return JSONResponse(completion_body(
            completion_id, settings.model_name, created, result,
            job.prompt_tokens))

    async def make_job(self, chat: ChatCompletionRequest,
                       completion_id: str) -> GenerationJob:
        """Validate the conversation, decode its image and run the
        ``test_pipeline``; errors are 4xx."""
        settings, engine = self.settings, self.engine
        conversation = to_conversation(chat.messages)
        image = None
        if conversation.image_url is not None:
            image = await load_image(
                conversation.image_url, conversation.image_param,
                settings.max_image_pixels, settings.max_body_bytes,
                settings.allow_remote_images)
        try:
            sample = await asyncio.to_thread(
                engine.prepare, conversation.turns, image, completion_id)
        except ValueError as error:
            raise APIError(400, f'The model\'s chat template cannot take '
                           f'this conversation: {error}', param='messages',
                           code='invalid_conversation') from None
        prompt_tokens = engine.prompt_tokens(sample)
        generation_cfg = self.model.generation_cfg
        return GenerationJob(
            sample=sample, prompt_tokens=prompt_tokens,
            max_tokens=max_tokens_for(chat, generation_cfg,
                                      settings.max_tokens_cap, prompt_tokens,
                                      engine.context_length),
            events=AsyncJobEvents(asyncio.get_running_loop()),
            sampling=sampling_for(chat, generation_cfg), stops=chat.stops)

    async def stream(self, job: GenerationJob, completion_id: str,
                     created: int, include_usage: bool):
        """The job's ``chat.completion.chunk`` events, then ``[DONE]``."""
        name = self.settings.model_name

        def chunk(delta: dict, finish_reason: Optional[str] = None) -> str:
            return sse(chunk_body(completion_id, name, created, delta,
                                  finish_reason))

        try:
            yield chunk({'role': 'assistant', 'content': ''})
            async for event in job.events:
                if isinstance(event, str):
                    yield chunk({'content': event})
                elif isinstance(event, RowResult):
                    yield chunk({}, event.finish_reason)
                    if include_usage:
                        yield sse(chunk_body(
                            completion_id, name, created, {},
                            usage_counts=usage(job.prompt_tokens,
                                               event.completion_tokens)))
                else:
                    log_failure(event)
                    yield sse(error_body(500, 'Generation failed.'))
            yield sse('[DONE]')
        finally:
            # A client that left ends its row early; after the end this
            # changes nothing.
            job.events.cancelled = True


def log_failure(error: BaseException) -> None:
    print_log(f'Request failed: {error!r}', logger='current',
              level=logging.ERROR)


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


def build_app(model, settings: ServerSettings) -> Starlette:
    """The Starlette app serving ``model``; ``app.state.server`` is its
    :class:`ChatServer` (the batcher's ``stats()`` are there).

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
            Route('/v1/models', server.list_models, methods=['GET']),
            Route('/v1/models/{model:path}', server.get_model,
                  methods=['GET']),
            Route('/v1/chat/completions', server.chat_completions,
                  methods=['POST']),
        ],
        exception_handlers={APIError: api_error, HTTPException: http_error,
                            Exception: server_error},
        lifespan=lifespan)
    app.state.server = server
    return app
