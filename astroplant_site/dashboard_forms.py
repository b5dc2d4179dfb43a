"""The dashboard's forms: the chart range a kit page opens with, and the member management forms."""

from datetime import UTC

from django import forms

from kits.models import Role

# The presets a kit page offers. `auto` resolution in the data API keeps every one of them
# under about 2,000 points per series.
RANGE_PRESETS = [
    ("hour", "Last hour"),
    ("day", "Last day"),
    ("week", "Last week"),
    ("month", "Last month"),
    ("year", "Last year"),
]
CUSTOM = "custom"
DEFAULT_PRESET = "day"
# What <input type="datetime-local"> sends, with and without seconds, and ISO 8601 with `Z`.
DATETIME_INPUT_FORMATS = ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S.%fZ"]


class ChartRangeForm(forms.Form):
    """`?range=day`, or `?range=custom&from=...&to=...` (UTC): the range a kit page shows first."""

    range = forms.ChoiceField(choices=[*RANGE_PRESETS, (CUSTOM, "Custom range")], required=False)
    to = forms.DateTimeField(required=False, input_formats=DATETIME_INPUT_FORMATS)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # `from` is a Python keyword, so it cannot be a class attribute; the query parameter
        # keeps the data API's name all the same.
        self.fields["from"] = forms.DateTimeField(required=False, input_formats=DATETIME_INPUT_FORMATS)
        self.order_fields(["range", "from", "to"])

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("range") == CUSTOM and not self.errors:
            start, end = cleaned.get("from"), cleaned.get("to")
            if start is None or end is None:
                raise forms.ValidationError("A custom range needs both a start and an end time.")
            if start >= end:
                raise forms.ValidationError("The start of the range must come before its end.")
        return cleaned

    def chart_range(self) -> dict:
        """The range for the page's script: a preset, or a custom range as ISO 8601 UTC times.
        Input that does not validate falls back to the default preset (the page shows why)."""
        if not self.is_bound or not self.is_valid():
            return {"preset": DEFAULT_PRESET}
        preset = self.cleaned_data.get("range") or DEFAULT_PRESET
        if preset != CUSTOM:
            return {"preset": preset}
        return {
            "preset": CUSTOM,
            "from": _iso_utc(self.cleaned_data["from"]),
            "to": _iso_utc(self.cleaned_data["to"]),
        }


def _iso_utc(moment) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class MemberAddForm(forms.Form):
    member = forms.CharField(
        label="Username or e-mail",
        max_length=254,
        help_text="The person needs an AstroPlant account already.",
        widget=forms.TextInput(attrs={"autocomplete": "off", "autocapitalize": "none", "spellcheck": "false"}),
    )
    role = forms.ChoiceField(label="Role", choices=Role.choices, initial=Role.VIEWER)


class MemberRoleForm(forms.Form):
    role = forms.ChoiceField(label="Role", choices=Role.choices)
