"""Forms for queueing a file."""

from __future__ import annotations

from decimal import Decimal

from django import forms

from jobs import services
from jobs.models import GcodeFile, Job
from jobs.presenters import file_facts
from printers.models import Printer, Tag

QUANTITY_MAX = 500


class QueueForm(forms.Form):
    action = forms.ChoiceField(choices=Job.Action.choices, initial=Job.Action.PRINT, widget=forms.RadioSelect)
    quantity = forms.IntegerField(
        min_value=1,
        max_value=QUANTITY_MAX,
        initial=1,
        help_text="Copies, each on whichever printer fits first.",
    )
    priority = forms.IntegerField(
        min_value=-100, max_value=100, initial=0, help_text="Higher runs first; 0 is normal."
    )
    printers = forms.ModelMultipleChoiceField(
        queryset=Printer.objects.all(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Send to these printers",
        help_text="One copy on each printer ticked (the quantity is then ignored). "
        "Leave empty for any printer.",
    )
    tags = forms.ModelMultipleChoiceField(
        queryset=Tag.objects.all(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Only printers tagged",
    )
    material = forms.ChoiceField(
        choices=[("", "Any material"), *Printer.Material.choices], required=False, label="Loaded material"
    )
    nozzle = forms.DecimalField(
        min_value=Decimal("0.1"),
        max_value=Decimal("2.0"),
        max_digits=3,
        decimal_places=2,
        required=False,
        label="Nozzle diameter",
        help_text="mm; empty: the nozzle the file was sliced for, if known.",
    )

    def __init__(self, *args, file: GcodeFile | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        facts = file_facts(file) if file is not None else None
        if facts is not None and facts.materials:
            # Said, not preselected: printers often have no material recorded, and a required
            # material would keep the job off them (the queue would explain why).
            self.fields["material"].help_text = f"The file was sliced for {', '.join(facts.materials)}."
        if facts is not None and len(facts.plates) > 1:
            self.fields["plates"] = forms.TypedMultipleChoiceField(
                choices=[
                    (p.index, f"{p.index} · {p.name}" if p.name else f"Plate {p.index}") for p in facts.plates
                ],
                coerce=int,
                initial=[p.index for p in facts.plates],
                widget=forms.CheckboxSelectMultiple,
                label="Plates",
                help_text="One job per plate ticked (and per copy).",
                error_messages={"required": "Tick at least one plate."},
            )

    def clean(self):
        data = super().clean()
        printers = data.get("printers")
        if printers:
            disabled = [p.name for p in printers if not p.enabled]
            if disabled:
                self.add_error("printers", f"Disabled, enable first: {', '.join(disabled)}.")
        return data

    def queue(self, file: GcodeFile, *, by: object = None, via: str = "web") -> list[Job]:
        """The jobs this (valid) form asks for, queued (and audited when `by` is a user)."""
        data = self.cleaned_data
        return services.jobs_create(
            file=file,
            quantity=data["quantity"],
            priority=data["priority"],
            action=data["action"],
            printers=list(data["printers"]),
            tags=list(data["tags"]),
            material=data["material"],
            nozzle=data["nozzle"],
            by=by,
            via=via,
            plates=data.get("plates"),  # asked only when a 3MF has several; None: all of them
        )


class PrintNowForm(forms.Form):
    printer = forms.ModelChoiceField(
        queryset=Printer.objects.filter(enabled=True), empty_label="Choose a printer"
    )
