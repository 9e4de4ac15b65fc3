from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.authtoken.views import obtain_auth_token
from rest_framework.routers import DefaultRouter

from annotate import api as annotate_api
from annotate import views as annotate_views
from config import views

router = DefaultRouter()
router.register("radiographs", annotate_api.RadiographViewSet, basename="radiograph")
router.register("imports", annotate_api.ImportJobViewSet, basename="import")

urlpatterns = [
    path("", views.home, name="home"),
    path("health/", views.health, name="health"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("admin/", admin.site.urls),
    path("radiographs/", annotate_views.radiograph_list, name="radiograph_list"),
    path("radiographs/<int:pk>/", annotate_views.radiograph_detail, name="radiograph_detail"),
    path("radiographs/<int:pk>/preview.jpg", annotate_views.radiograph_preview, name="radiograph_preview"),
    path("imports/", annotate_views.import_list, name="import_list"),
    path("imports/<int:pk>/", annotate_views.import_detail, name="import_detail"),
    path("api/", include(router.urls)),
    path("api/token/", obtain_auth_token, name="api_token"),
    path("api/schema/", SpectacularAPIView.as_view(), name="api_schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api_schema"), name="api_docs"),
]
