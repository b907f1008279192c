"""A local chat-completions server that answers from a script.

For dry runs of the data tools and for their tests: it speaks enough of the
OpenAI chat completions API for :class:`~mmllava.datagen.client.ChatClient`,
answers each request with what a ``respond(body, index)`` function returns
(a :class:`Reply`, or a :class:`Status` such as a 429 with ``Retry-After``),
and records every request it received.

.. code-block:: python

    respond = lambda body, index: Reply('Q: Hi?\\nA: Hello.')
    with ReplayServer(respond) as server:
        ...  # point a client at server.base_url
        print(server.requests[0].headers['authorization'])
"""
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Union

from mmllava.datagen.prompts import SYSTEM_PROMPTS


@dataclass
class Reply:
    """A completion.

    Args:
        content (str): The assistant message.
        finish_reason (str): Defaults to ``'stop'``.
        delay (float): Seconds to wait before answering (a slow server).
        prompt_tokens (int): Usage reported. Defaults to 100.
        completion_tokens (int): Usage reported. Defaults to 20.
    """
    content: str
    finish_reason: str = 'stop'
    delay: float = 0.0
    prompt_tokens: int = 100
    completion_tokens: int = 20


@dataclass
class Status:
    """An error status.

    Args:
        code (int): e.g. 429, 500, 401.
        headers (dict): e.g. ``{'Retry-After': '2'}``.
    """
    code: int
    headers: dict = field(default_factory=dict)


Action = Union[Reply, Status]


@dataclass
class Received:
    """A request as the server saw it: path, headers (lower-case names),
    the json body, and whether the answer was sent in full."""
    path: str
    headers: dict
    body: dict
    answered: bool = False


def demo_reply(body: dict, index: int = 0) -> Reply:
    """A well-formed reply to an instruction-generation request of any
    type, made from the context's first caption (for dry runs)."""
    system = body['messages'][0]['content']
    kinds = [kind for kind, prompt in SYSTEM_PROMPTS.items()
             if prompt == system]
    if not kinds:
        return Reply('This server only answers instruction-generation '
                     'requests.')
    caption = body['messages'][-1]['content'].split('\n', 1)[0].rstrip('.')
    if kinds[0] == 'detail':
        return Reply(f'{caption}. The scene is shown clearly, with the main '
                     'subject in the middle of the picture.')
    if kinds[0] == 'complex':
        return Reply(f'Q: What could explain this scene?\nA: {caption}, '
                     'most likely because it is an ordinary moment of the '
                     'day.')
    return Reply(f'Q: What does the image show?\nA: {caption}.\n'
                 'Q: Is the scene indoors?\nA: It is hard to say for '
                 'certain from the picture.')


Respond = Callable[[dict, int], Action]


def by_marker(script: dict[str, list[Union[Action, Respond]]],
              default: Union[Action, Respond]) -> Respond:
    """A ``respond`` function scripted per item: the first key of
    ``script`` found in the last message of a request picks that key's
    actions, in order (the last one repeats); requests matching no key get
    ``default``. An action may also be a ``respond`` function, such as
    :func:`demo_reply`. Thread-safe."""
    counts = {}
    lock = threading.Lock()

    def respond(body: dict, index: int) -> Action:
        last = body['messages'][-1]['content']
        text = last if isinstance(last, str) else json.dumps(last)
        for marker, actions in script.items():
            if marker in text:
                with lock:
                    count = counts.get(marker, 0)
                    counts[marker] = count + 1
                return _act(actions[min(count, len(actions) - 1)], body,
                            index)
        return _act(default, body, index)

    return respond


def _act(action: Union[Action, Respond], body: dict, index: int) -> Action:
    return action(body, index) if callable(action) else action


class ReplayServer:
    """Serves ``POST /v1/chat/completions`` on 127.0.0.1 in a thread.

    Args:
        respond (callable): ``respond(body, index) -> Reply | Status``;
            ``index`` counts requests from 0.
        port (int): 0 picks a free port.
    """

    def __init__(self, respond: Respond,
                 port: int = 0) -> None:
        self.respond = respond
        self.requests: list[Received] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(('127.0.0.1', port),
                                           self._handler_class())
        self._server.daemon_threads = True
        # A short poll interval: shutdown() waits for one.
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        args=(0.05, ), daemon=True)

    @property
    def base_url(self) -> str:
        """The API root to give a client."""
        return f'http://127.0.0.1:{self._server.server_address[1]}/v1'

    def __enter__(self) -> 'ReplayServer':
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler_class(self) -> type:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = 'HTTP/1.1'

            def log_message(self, *args) -> None:
                pass  # tests read self.requests, not stderr

            def do_POST(self) -> None:
                length = int(self.headers.get('Content-Length', 0))
                raw = self.rfile.read(length)
                if length == 0 or len(raw) < length:
                    # A client killed before it sent its body: no request.
                    self.close_connection = True
                    return
                body = json.loads(raw)
                received = Received(self.path, {k.lower(): v for k, v in
                                                self.headers.items()}, body)
                with server._lock:
                    index = len(server.requests)
                    server.requests.append(received)
                if self.path != '/v1/chat/completions':
                    action = Status(404)
                else:
                    action = server.respond(body, index)
                try:
                    self._send(action, body)
                    received.answered = True
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting (a timeout test)

            def _send(self, action: Action, body: dict) -> None:
                if isinstance(action, Status):
                    payload = json.dumps(dict(error=dict(
                        message=f'scripted status {action.code}'))).encode()
                    self.send_response(action.code)
                    for name, value in action.headers.items():
                        self.send_header(name, value)
                else:
                    time.sleep(action.delay)
                    payload = json.dumps(dict(
                        id=f'replay-{time.monotonic_ns()}',
                        object='chat.completion', model=body.get('model'),
                        choices=[dict(index=0, finish_reason=(
                            action.finish_reason), message=dict(
                                role='assistant', content=action.content))],
                        usage=dict(prompt_tokens=action.prompt_tokens,
                                   completion_tokens=action.completion_tokens,
                                   total_tokens=action.prompt_tokens +
                                   action.completion_tokens))).encode()
                    self.send_response(200)
                self.send_header('Content-Type', 'application/json')
                self.send_header('Content-Length', str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
                self.wfile.flush()

        return Handler
