package ledger

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
)

var pgVoucherInsert, pgVoucherList, pgVoucherRevoke, pgVoucherGet, pgVoucherRedeem = voucherSQL(func(i int) string { return "$" + strconv.Itoa(i) })

func (s *pgStore) CreateVouchers(ctx context.Context, vs []Voucher) error {
	for _, v := range vs {
		if err := validVoucher(v); err != nil {
			return err
		}
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		for _, v := range vs {
			b.Queue(pgVoucherInsert, v.ID, v.CodeHash, int64(v.Amount), v.TenantID, v.Created.UnixMicro(), timePtrMicros(v.Expires))
		}
		return tx.SendBatch(ctx, b).Close()
	})
	if err != nil {
		return fmt.Errorf("ledger: create %d vouchers: %w", len(vs), err)
	}
	return nil
}

func (s *pgStore) Vouchers(ctx context.Context, f VoucherFilter) ([]Voucher, error) {
	out, err := pgCollect(ctx, s.pool, scanVoucher, pgVoucherList, limitOrAll(f.Limit))
	if err != nil {
		return nil, fmt.Errorf("ledger: vouchers: %w", err)
	}
	return out, nil
}

func (s *pgStore) RevokeVoucher(ctx context.Context, id string, at time.Time) (Voucher, error) {
	v, err := scanVoucher(s.pool.QueryRow(ctx, pgVoucherRevoke, id, at.UnixMicro()))
	if errors.Is(err, pgx.ErrNoRows) {
		_, err = scanVoucher(s.pool.QueryRow(ctx, pgVoucherGet, id))
		if err = notRevocable(id, err, pgx.ErrNoRows); errors.Is(err, ErrVoucherNotFound) || errors.Is(err, ErrVoucherSpent) {
			return Voucher{}, err
		}
	}
	if err != nil {
		return Voucher{}, fmt.Errorf("ledger: revoke voucher %s: %w", id, err)
	}
	return v, nil
}

func (s *pgStore) RedeemVoucher(ctx context.Context, r RedeemRequest) (Redemption, error) {
	if err := checkRedeem(r); err != nil {
		return Redemption{}, err
	}
	var out Redemption
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		out, err = redeemIn(r,
			func() (Voucher, error) {
				v, err := scanVoucher(tx.QueryRow(ctx, pgVoucherRedeem, r.CodeHash, r.TenantID, r.Time.UnixMicro()))
				if errors.Is(err, pgx.ErrNoRows) {
					return Voucher{}, ErrInvalidVoucher
				}
				return v, err
			},
			func(es []Entry) (int, error) { return pgApplyOn(ctx, tx, &s.alerts, es) },
			func() (Account, error) {
				a := Account{TenantID: r.TenantID}
				err := tx.QueryRow(ctx, `SELECT balance, reserved FROM ledger_accounts WHERE tenant_id = $1`, r.TenantID).Scan(&a.Balance, &a.Reserved)
				return a, err
			})
		return err
	})
	if err != nil {
		return Redemption{}, redeemError(err)
	}
	return out, nil
}
