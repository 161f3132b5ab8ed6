"""Create the first admin login if the farm has no superuser yet, and print it."""

from __future__ import annotations

import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create an admin user if none exists; print the login."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="admin")

    def handle(self, *args, username: str, **options):
        User = get_user_model()
        # The generated password is kept beside the database so a later run can show it
        # again; it is only ever printed while that user still has it.
        password_file = settings.DATA_DIR / "initial_admin_password"
        if User.objects.filter(is_superuser=True).exists():
            user = User.objects.filter(username=username).first()
            if password_file.exists() and user and user.check_password(password_file.read_text().strip()):
                self.stdout.write(f"Login: {username} / {password_file.read_text().strip()}")
            else:
                self.stdout.write("Login: your existing admin account")
            return
        password = secrets.token_urlsafe(12)
        User.objects.create_superuser(username=username, email="", password=password)
        password_file.write_text(password + "\n")
        password_file.chmod(0o600)
        self.stdout.write(f"Created admin login: {username} / {password}")
