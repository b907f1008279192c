"""Errors a client can act on, as OpenAI-style bodies
(``{"error": {"message", "type", "param", "code"}}``)."""
from typing import Optional

#: The ``type`` OpenAI gives each status.
ERROR_TYPES = {
    400: 'invalid_request_error',
    401: 'authentication_error',
    404: 'not_found_error',
    405: 'invalid_request_error',
    408: 'invalid_request_error',
    413: 'invalid_request_error',
    415: 'invalid_request_error',
    422: 'invalid_request_error',
    500: 'server_error',
    503: 'overloaded_error',
}


class APIError(Exception):
    """A request the server answers with an error status.

    Args:
        status (int): The HTTP status (400, 401, 404, 408, 413, 415, 503, ...).
        message (str): What is wrong, for a person to read.
        param (str, optional): The request field at fault, e.g.
            ``'messages[0].content[1].image_url'``.
        code (str, optional): A machine-readable reason, e.g.
            ``'max_tokens_exceeded'``.
        headers (dict, optional): Extra response headers (``Retry-After``).
    """

    def __init__(self, status: int, message: str,
                 param: Optional[str] = None, code: Optional[str] = None,
                 headers: Optional[dict] = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.headers = headers or {}

    def body(self) -> dict:
        """The JSON body of the response."""
        return error_body(self.status, self.message, self.param, self.code)


def error_body(status: int, message: str, param: Optional[str] = None,
               code: Optional[str] = None) -> dict:
    return {'error': {'message': message,
                      'type': ERROR_TYPES.get(status, 'invalid_request_error'),
                      'param': param, 'code': code}}
