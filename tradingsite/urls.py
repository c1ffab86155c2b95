from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView
from rest_framework_simplejwt.views import TokenVerifyView

from realtime import views as realtime_views
from security import views as security_views

urlpatterns = [
    path("", realtime_views.demo_page, name="demo"),
    # Browsers ask for /favicon.ico on pages that name no icon (the admin's): answer, not a logged 404.
    path("favicon.ico", RedirectView.as_view(url=static("favicon.svg"), permanent=True)),
    path("admin/", admin.site.urls),
    path("api/token/", security_views.LoginView.as_view(), name="token_obtain_pair"),
    path("api/token/refresh/", security_views.RefreshView.as_view(), name="token_refresh"),
    path("api/token/verify/", TokenVerifyView.as_view(), name="token_verify"),
    path("api/", include("accounts.urls")),
    path("ws/status", realtime_views.status, name="ws_status"),
    path("metrics", realtime_views.metrics, name="metrics"),
]
