"""Remove what killed uploads left behind and settle records whose bytes are gone; say what."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from jobs import library


class Command(BaseCommand):
    help = (
        "Remove upload leftovers older than an hour (temp files, stored files and thumbnails no "
        "record points at) and settle records whose bytes are missing. `serve` runs it at start."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="report what would go, change nothing")

    def handle(self, *args, dry_run: bool, **options):
        result = library.clean(dry_run=dry_run)
        for line in result.lines:
            self.stdout.write(line)
        if not result.lines:
            self.stdout.write("clean_files: nothing to clean.")
