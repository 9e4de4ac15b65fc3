"""URLs of the reader-study app.

``reader_urlpatterns`` (``/reader/``): the readers' pages. ``urlpatterns`` (``/studies/``):
the researchers' pages. ``api_urlpatterns`` (``/api/``): the readers' API
(``readerstudy.api``) and the researchers' (``readerstudy.views``' JSON endpoints).
"""

from django.urls import path

import config.converters  # noqa: F401 - registers the <id:...> converter (63-bit ids; longer is a 404)
from readerstudy import api, power_views, reader_views, views

reader_urlpatterns = [
    path("", reader_views.reader_home, name="reader_home"),
    path("studies/<id:pk>/", reader_views.reading_page, name="reading_page"),
]

urlpatterns = [
    path("", views.study_list, name="study_list"),
    path("<id:pk>/", views.study_detail, name="study_detail"),
    path("<id:pk>/readers/", views.study_add_reader, name="study_add_reader"),
    path("<id:pk>/export/<str:name>", views.study_export_file, name="study_export_file"),
    path("<id:pk>/reports/", views.study_report_start, name="study_report_start"),
    path("<id:pk>/reports/<id:report_pk>/", views.study_report_detail, name="study_report_detail"),
    path("<id:pk>/reports/<id:report_pk>/<str:name>", views.study_report_file, name="study_report_file"),
    path("<id:pk>/power/", power_views.study_power_start, name="study_power_start"),
    path("<id:pk>/power/<str:plan>/", power_views.study_power_detail, name="study_power_detail"),
    path("<id:pk>/power/<str:plan>/status.json", power_views.study_power_json, name="study_power_json"),
    path("<id:pk>/power/<str:plan>/<str:name>", power_views.study_power_file, name="study_power_file"),
]

api_urlpatterns = [
    path("reader/studies/", api.my_studies, name="reader-studies"),
    path("reader/studies/<id:pk>/current/", api.study_current, name="reader-current"),
    path("reader/studies/<id:pk>/answers/", api.answer, name="reader-answer"),
    path("reader/cases/<id:pk>/crop.png", api.case_crop, name="reader-case-crop"),
    path("reader/cases/<id:pk>/pixels/", api.case_pixels, name="reader-case-pixels"),
    path("reader/cases/<id:pk>/heatmap.png", api.case_heatmap, name="reader-case-heatmap"),
    path("studies/<id:pk>/progress/", views.study_progress_json, name="study-progress"),
    path("studies/<id:pk>/reports/<id:report_pk>/", views.study_report_json, name="study-report"),
]
