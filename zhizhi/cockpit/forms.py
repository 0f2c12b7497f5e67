"""The indicator form (page /cockpit/indicators/ and the admin): a definition is checked against
the registered sources when it is saved, so a bad filter never reaches the board."""

from __future__ import annotations

from typing import Any

from django import forms

from zhizhi.cockpit import services, sources
from zhizhi.cockpit.models import Indicator

# The form edits what an import file may carry: the code and every imported field, in that order.
FIELDS = ["code", *services.IMPORT_FIELDS]


class JSONText(forms.JSONField):
    """A JSON object typed in a textarea; an empty box is {}."""

    def to_python(self, value: Any) -> Any:
        if value in (None, ""):
            return {}
        return super().to_python(value)


class IndicatorForm(forms.ModelForm):
    params = JSONText(
        label="筛选条件(JSON)",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text='例 e.g. {"channel": ["hotline"]}',
    )
    denominator_params = JSONText(
        label="分母筛选条件(JSON)", required=False, widget=forms.Textarea(attrs={"rows": 2})
    )

    class Meta:
        model = Indicator
        fields = FIELDS
        widgets = {
            "source": forms.TextInput(attrs={"list": "cockpit-sources"}),
            "denominator_source": forms.TextInput(attrs={"list": "cockpit-sources"}),
            "measure": forms.TextInput(attrs={"list": "cockpit-measures"}),
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["code"].disabled = True  # the code is how screens and imports name it


def catalog() -> list[dict[str, Any]]:
    """The registered sources, their kind, windows, measures and filters (shown beside the form)."""
    sources.ensure_filters()
    out = []
    for name, source in sorted(sources.REGISTRY.items()):
        filters = []
        for key, spec in source.filters.items():
            allowed = spec.allowed()
            values = [c for c, _ in spec.choices] if spec.choices else sorted(allowed or [])[:12]
            filters.append(
                {"name": key, "label": spec.label, "kind": spec.kind, "many": spec.many, "values": values}
            )
        out.append(
            {
                "name": name,
                "label": source.label,
                "label_en": source.label_en,
                "kind": source.kind,
                "windows": source.windows,
                "measures": source.measures,
                "filters": filters,
                "defaults": source.defaults,
            }
        )
    return out
