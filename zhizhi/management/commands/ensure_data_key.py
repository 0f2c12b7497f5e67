"""Create the local data key file (mode 0600) if no key is configured yet."""

from django.conf import settings
from django.core.management.base import BaseCommand

from zhizhi.crypto import generate_key_file


class Command(BaseCommand):
    help = "Create the AES key for personal data in ZHIZHI_DATA_KEY_FILE (0600) unless a key exists."

    def handle(self, *args, **options):  # type: ignore[no-untyped-def]
        if settings.ZHIZHI_DATA_KEY:
            self.stdout.write("ZHIZHI_DATA_KEY is set; no key file needed.")
            return
        path = settings.ZHIZHI_DATA_KEY_FILE
        if generate_key_file(path):
            self.stdout.write(
                f"Wrote a new data key to {path} (mode 0600). Back it up: without it the "
                "encrypted ID numbers and phones cannot be read."
            )
        else:
            self.stdout.write(f"Data key file {path} already exists.")
