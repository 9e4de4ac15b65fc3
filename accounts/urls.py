"""accounts/: Django's login, logout and password pages (reset only with mail), and the
tokens page. The URL names are Django's own."""

from django.contrib.auth import views as auth_views
from django.urls import path

from accounts import views

urlpatterns = [
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("password_change/", auth_views.PasswordChangeView.as_view(), name="password_change"),
    path("password_change/done/", auth_views.PasswordChangeDoneView.as_view(), name="password_change_done"),
    path("password_reset/", views.mail_required(auth_views.PasswordResetView.as_view()), name="password_reset"),
    path(
        "password_reset/done/",
        views.mail_required(auth_views.PasswordResetDoneView.as_view()),
        name="password_reset_done",
    ),
    path(
        "reset/<uidb64>/<token>/",
        views.mail_required(auth_views.PasswordResetConfirmView.as_view()),
        name="password_reset_confirm",
    ),
    path(
        "reset/done/",
        views.mail_required(auth_views.PasswordResetCompleteView.as_view()),
        name="password_reset_complete",
    ),
    path("tokens/", views.token_list, name="account_tokens"),
    path("tokens/revoke/", views.token_revoke, name="account_token_revoke"),
]
