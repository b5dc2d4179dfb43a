"""API token authentication: django-rest-knox's, minus its sweep of expired tokens on every request.

knox, before checking a token, reads every token of its user and deletes the expired ones: a
second query on every signed-in request, growing with the user's devices. The sweep belongs where
tokens are made: signing in deletes the user's expired tokens (auth_api.TokenApi). What guards a
request stays knox's own: the token found by its key, its digest compared in constant time, an
expired token refused (and deleted), an inactive user refused, the expiry renewed on use
(AUTO_REFRESH)."""

from django.utils import timezone
from drf_spectacular.contrib.knox_auth_token import KnoxTokenScheme
from knox.auth import TokenAuthentication as KnoxTokenAuthentication
from knox.models import get_token_model
from knox.signals import token_expired


class TokenAuthentication(KnoxTokenAuthentication):
    def _cleanup_token(self, auth_token) -> bool:
        # knox's hook, called for each token found by its key before its digest is compared:
        # True skips the token. Only this token's own expiry is checked here.
        if auth_token.expiry is not None and auth_token.expiry < timezone.now():
            username = auth_token.user.get_username()
            auth_token.delete()
            token_expired.send(sender=self.__class__, username=username, source="auth_token")
            return True
        return False


def expired_tokens_delete(*, user) -> int:
    """Deletes `user`'s expired API tokens (they are refused anyway); returns how many."""
    deleted, _ = get_token_model().objects.filter(user=user, expiry__lt=timezone.now()).delete()
    return deleted


class TokenAuthenticationScheme(KnoxTokenScheme):
    """The schema's security scheme for it: knox's own (`knoxApiToken`), which names knox's class only."""

    target_class = TokenAuthentication
