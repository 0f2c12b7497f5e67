from django.apps import AppConfig
from django.db.models.signals import post_save


class IntakeConfig(AppConfig):
    name = "zhizhi.intake"
    label = "intake"
    verbose_name = "多渠道受理"

    def ready(self) -> None:
        from zhizhi.cases.models import Case
        from zhizhi.intake.services import callback_url_for, code_phone_for, on_case_saved
        from zhizhi.notify.services import RESOLVERS

        # The core has no finish hook of its own: Case's post_save is the point where a result lands.
        post_save.connect(on_case_saved, sender=Case, dispatch_uid="intake_feedback")
        RESOLVERS["intake"] = callback_url_for
        RESOLVERS["intakecode"] = code_phone_for
