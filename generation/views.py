"""Studio pages. Thin: forms validate the shape, services do the work, selectors scope reads to the user."""

from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from . import selectors, services
from .forms import JobForm
from .models import Kind


@login_required
def job_new(request, kind: str = Kind.HEADLINE):
    if kind not in Kind.values:
        raise Http404
    templates = list(selectors.templates_for_kind(kind))
    slug = request.GET.get("template")
    template = next((t for t in templates if t.slug == slug), None) or next((t for t in templates if t.is_default), None)
    if template is None:
        raise Http404
    version = services.resolve_version(template)
    form = JobForm(version, request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            job = services.job_create(
                user=request.user, template=template.slug, version=version.number, inputs=form.inputs(), params=form.params()
            )
        except ValidationError as exc:
            form.add_service_errors(exc.message_dict)
        else:
            return redirect("job-detail", job_id=job.pk)
    context = {"form": form, "kind": kind, "kinds": Kind.choices, "template": template, "templates": templates, "version": version}
    return render(request, "generation/job_new.html", context)


@login_required
def job_detail(request, job_id):
    job = selectors.job_for_user(request.user, job_id)
    if job is None:
        raise Http404
    return render(request, "generation/job_detail.html", {"job": job, "outputs": list(job.outputs.all())})


@login_required
@require_POST
def job_rerun(request, job_id):
    """Run again: the same template version, inputs, params and seed."""
    job = selectors.job_for_user(request.user, job_id)
    if job is None:
        raise Http404
    return redirect("job-detail", job_id=services.job_rerun(job, user=request.user).pk)


@login_required
def job_list(request):
    page = Paginator(selectors.jobs_visible_to(request.user), 25).get_page(request.GET.get("page"))
    return render(request, "generation/job_list.html", {"page": page})


def home(request):
    return redirect("job-new")
