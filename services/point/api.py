from decimal import Decimal

from django.conf import settings
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.response import Response
from rest_framework.views import APIView

from sagaboard import idempotency
from sagaboard.access import OperatorAccess
from sagaboard.kernel import fields
from sagaboard.schema import HolderIdField, PointsField, errors

from .models import Account, Spend
from .services import BalanceLimit, grant_points


class AccountSerializer(serializers.Serializer):
    userId = serializers.CharField(source="holder_id")
    point = PointsField(read_only=True)


class GrantSerializer(serializers.Serializer):
    userId = HolderIdField()
    point = PointsField(lowest=fields.POINT_UNIT, highest=Decimal(settings.SAGA_MAX_AMOUNT))


class SpendSerializer(serializers.Serializer):
    orderId = serializers.IntegerField(source="order_id")
    holderId = serializers.CharField(source="holder_id")
    point = PointsField()
    createdAt = serializers.DateTimeField(source="created_at")
    refundedAt = serializers.DateTimeField(source="refunded_at", allow_null=True)


class PointsView(APIView):
    permission_classes = [OperatorAccess]  # granting points is staff-only in production

    @extend_schema(summary="Every holder's balance", responses={200: AccountSerializer(many=True), **errors()})
    def get(self, request):
        return Response(AccountSerializer(Account.objects.all(), many=True).data)

    @extend_schema(summary="Grant points to a holder", request=GrantSerializer, parameters=[idempotency.PARAMETER],
                   responses={201: AccountSerializer, **errors(409, 413, 422)})
    @idempotency.idempotent(lambda view, request: "point")
    def post(self, request):
        grant = GrantSerializer(data=request.data)
        grant.is_valid(raise_exception=True)
        try:
            account = grant_points(holder_id=grant.validated_data["userId"], point=grant.validated_data["point"])
        except BalanceLimit as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        return Response(AccountSerializer(account).data, status=status.HTTP_201_CREATED)


class PointView(APIView):
    @extend_schema(summary="One holder's balance", responses={200: AccountSerializer, **errors(404)})
    def get(self, request, userId):
        try:
            fields.HOLDER_ID.clean(userId)
        except fields.FieldInvalid:
            raise NotFound(f"there is no holder {userId!r}") from None  # and such an id never reaches a database
        account = Account.objects.filter(holder_id=userId).first()
        if account is None:
            raise NotFound(f"there is no holder {userId!r}")
        return Response(AccountSerializer(account).data)


class TransactionsView(APIView):
    @extend_schema(summary="Points spent on orders (refundedAt is set once compensated)", responses={200: SpendSerializer(many=True), **errors()})
    def get(self, request):
        return Response(SpendSerializer(Spend.objects.all(), many=True).data)
