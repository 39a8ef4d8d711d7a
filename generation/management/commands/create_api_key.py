from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from generation import services


class Command(BaseCommand):
    help = "Create an API key for USERNAME. The key is printed once, alone on the last line."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default="", help="A label for the key, e.g. the tool that uses it.")

    def handle(self, username, name, **options):
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user named {username!r}.")
        key, raw = services.api_key_create(user, name=name)
        self.stderr.write(f"Created key aigc_{key.prefix}_… for {username}. Store it now: it cannot be shown again.")
        self.stdout.write(raw)
