"""URLs of the reader-study app.

``reader_urlpatterns`` (``/reader/``): the readers' pages. ``urlpatterns`` (``/studies/``):
the researchers' pages. ``api_urlpatterns`` (``/api/``): the readers' API
(``readerstudy.api``) and the researchers' (``readerstudy.views``' JSON endpoints).
"""

from django.urls import path

from readerstudy import api, reader_views, views

reader_urlpatterns = [
    path("", reader_views.reader_home, name="reader_home"),
    path("studies/<int:pk>/", reader_views.reading_page, name="reading_page"),
]

urlpatterns = [
    path("", views.study_list, name="study_list"),
    path("<int:pk>/", views.study_detail, name="study_detail"),
    path("<int:pk>/readers/", views.study_add_reader, name="study_add_reader"),
    path("<int:pk>/export/<str:name>", views.study_export_file, name="study_export_file"),
    path("<int:pk>/reports/", views.study_report_start, name="study_report_start"),
    path("<int:pk>/reports/<int:report_pk>/", views.study_report_detail, name="study_report_detail"),
    path("<int:pk>/reports/<int:report_pk>/<str:name>", views.study_report_file, name="study_report_file"),
]

api_urlpatterns = [
    path("reader/studies/", api.my_studies, name="reader-studies"),
    path("reader/studies/<int:pk>/current/", api.study_current, name="reader-current"),
    path("reader/studies/<int:pk>/answers/", api.answer, name="reader-answer"),
    path("reader/cases/<int:pk>/crop.png", api.case_crop, name="reader-case-crop"),
    path("reader/cases/<int:pk>/pixels/", api.case_pixels, name="reader-case-pixels"),
    path("reader/cases/<int:pk>/heatmap.png", api.case_heatmap, name="reader-case-heatmap"),
    path("studies/<int:pk>/progress/", views.study_progress_json, name="study-progress"),
    path("studies/<int:pk>/reports/<int:report_pk>/", views.study_report_json, name="study-report"),
]
