from django.db import migrations, models
from django.db.models import Max, Min


def choose_what_was_approved(apps, schema_editor):
    """Before a choice existed, approving a job approved its first output: mark that one chosen, so nothing
    approved loses its text, and date each approval from its review log."""
    Job = apps.get_model("generation", "Job")
    JobOutput = apps.get_model("generation", "JobOutput")
    ReviewEvent = apps.get_model("generation", "ReviewEvent")
    approved = Job.objects.filter(review_state="approved")
    firsts = JobOutput.objects.filter(job__in=approved).values("job_id").annotate(first=Min("index"))
    for row in firsts.iterator():
        JobOutput.objects.filter(job_id=row["job_id"], index=row["first"]).update(chosen=True)
    dates = (
        ReviewEvent.objects.filter(job__in=approved, to_state="approved")
        .values("job_id")
        .annotate(at=Max("created_at"))
    )
    for row in dates.iterator():
        Job.objects.filter(pk=row["job_id"]).update(approved_at=row["at"])
    for job in approved.filter(approved_at__isnull=True).only("pk", "finished_at", "created_at").iterator():
        Job.objects.filter(pk=job.pk).update(approved_at=job.finished_at or job.created_at)


class Migration(migrations.Migration):
    dependencies = [
        ("generation", "0023_security_misc"),
    ]

    operations = [
        migrations.AddField(
            model_name="job",
            name="approved_at",
            field=models.DateTimeField(blank=True, db_index=True, null=True),
        ),
        migrations.AddField(
            model_name="joboutput",
            name="chosen",
            field=models.BooleanField(default=False),
        ),
        migrations.RunPython(choose_what_was_approved, migrations.RunPython.noop),
    ]
