import os
import secrets
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


def write_secret(path: Path, text: str) -> None:
    """Write `text` to `path` readable by its owner alone (0600 from the start: never briefly wider, whatever the
    umask), atomically: a reader sees the old file or the whole new one."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class Command(BaseCommand):
    help = (
        "Create USERNAME as a superuser with a random password if no such user exists, and print that password "
        "this once (and keep it in --password-file, mode 0600). Later runs never print it again."
    )

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--password-file", help="Keep the generated password in this file, readable only by you.")

    def handle(self, username, password_file, **options):
        User = get_user_model()
        path = Path(password_file) if password_file else None
        if User.objects.filter(username=username).exists():
            if path and path.exists():
                path.chmod(0o600)  # a file an older version wrote with the umask's mode
                self.stdout.write(
                    f"Account {username!r} exists; its first password is in {path} (unless changed since)."
                )
            else:
                self.stdout.write(f"Account {username!r} exists; its password is unchanged.")
            return
        password = secrets.token_urlsafe(12)
        User.objects.create_superuser(username=username, email="", password=password)
        if path:
            write_secret(path, password + "\n")
        kept = f" (kept in {path}, readable only by you)" if path else ""
        self.stdout.write(f"Created superuser {username!r} with the password {password}{kept}; it is not shown again.")
