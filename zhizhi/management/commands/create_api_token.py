"""Issue an API token for a user; the token is printed once and only its hash is kept."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from zhizhi.permissions import create_token


class Command(BaseCommand):
    help = "Create an API token for <username> named <name> (e.g. the integrating system). Printed once."

    def add_arguments(self, parser):  # type: ignore[no-untyped-def]
        parser.add_argument("username")
        parser.add_argument("name", help="what the token is for, e.g. 12345-hotline-bridge")

    def handle(self, *args, **options):  # type: ignore[no-untyped-def]
        user = get_user_model().objects.filter(username=options["username"]).first()
        if user is None:
            raise CommandError(f"用户不存在 / no such user: {options['username']}")
        if not user.is_active:
            raise CommandError(f"用户已停用 / user is inactive: {options['username']}")
        raw, token = create_token(user, options["name"])
        self.stderr.write(
            f"令牌「{token.name}」已为 {user.username} 创建；只显示这一次，请妥善保存。\n"
            f"Token '{token.name}' created for {user.username}; it is shown only once, keep it safe."
        )
        self.stdout.write(raw)
