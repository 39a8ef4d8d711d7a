import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create USERNAME as a superuser with a random password if no such user exists; print the password."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--password-file", help="Keep the generated password in this file (read back later).")

    def handle(self, username, password_file, **options):
        User = get_user_model()
        if User.objects.filter(username=username).exists():
            return
        password = secrets.token_urlsafe(12)
        User.objects.create_superuser(username=username, email="", password=password)
        if password_file:
            with open(password_file, "w") as fh:
                fh.write(password + "\n")
        self.stdout.write(f"Created superuser {username!r}.")
